//! Gemma 4's routed experts: the router (softmax, top-k, renormalised weights) and the
//! experts' GeGLU over the tokens routed to each, read through the [`Pager`]
//! (`docs/gemma4.md` §3.4). The dense branch and the norms around it stay in `ffn`.

use super::{Config, Moe};
use crate::gguf::Gguf;
use crate::model::decoder::{grow, State};
use crate::ops::pool::Pool;
use crate::ops::{self, QMatrix};
use crate::paging::index::ExpertMatrix;
use crate::paging::pager::Pager;
use crate::Result;

/// Router: `softmax(W_r · (RMSNorm₀(x) ⊙ scale · d^(−1/2)))` over all experts, top-k,
/// renormalised, times the per-expert scale. Reads the residual `x`, not a normed branch input
/// (HF `Gemma4TextRouter` normalises internally).
///
/// Parity with llama.cpp: one near-tie routing flip on the tiny Q4_0 fixture, and where the
/// router's arithmetic departs from ggml's (`docs/gemma4.md`, "Router parity").
pub(super) fn route(c: &Config, moe: &Moe, g: &Gguf, s: &mut State, n: usize) -> Result<()> {
    let (d, ne, k) = (c.base.n_embd, c.n_expert, c.n_expert_used);
    let (inv_sqrt_d, eps, prec) = (1.0 / (d as f32).sqrt(), c.base.rms_eps, s.mm.precision);
    // token rows are independent: each step on the pool, the same operations per row
    let (pool, x) = (Pool::current(), &s.x);
    pool.for_chunks(&mut s.xb[..n * d], d, |t, z| {
        z.copy_from_slice(&x[t * d..(t + 1) * d]);
        ops::rms_norm0(z, eps, prec);
        for (v, &sc) in z.iter_mut().zip(&moe.ffn_gate_inp_scale) {
            *v = *v * sc * inv_sqrt_d;
        }
    });
    grow(&mut s.router, n * ne);
    s.mm.matmul(&moe.ffn_gate_inp.view(g), &s.xb, n, &mut s.router)?;
    s.top_ids.resize(n * k, 0);
    s.top_w.resize(n * k, 0.0);
    pool.for_chunks(&mut s.router[..n * ne], ne, |_, p| ops::softmax(p, prec));
    let probs = &s.router;
    pool.for_chunks(&mut s.top_ids[..n * k], k, |t, ids| {
        let p = &probs[t * ne..(t + 1) * ne];
        // top-k by probability, ties to the lower index (stable selection)
        for j in 0..k {
            let mut best = usize::MAX;
            for e in 0..ne {
                if ids[..j].contains(&e) {
                    continue;
                }
                if best == usize::MAX || p[e] > p[best] {
                    best = e;
                }
            }
            ids[j] = best;
        }
    });
    let top_ids = &s.top_ids;
    pool.for_chunks(&mut s.top_w[..n * k], k, |t, w| {
        let (p, ids) = (&probs[t * ne..(t + 1) * ne], &top_ids[t * k..(t + 1) * k]);
        let sum: f32 = ids.iter().map(|&e| p[e]).sum();
        for (wt, &e) in w.iter_mut().zip(ids) {
            *wt = p[e] / sum * moe.ffn_down_exps_scale[e];
        }
    });
    Ok(())
}

/// The distinct experts in `top_ids`, ascending, into `used`.
pub(super) fn used_experts(top_ids: &[usize], used: &mut Vec<usize>) {
    used.clear();
    used.extend_from_slice(top_ids);
    used.sort_unstable();
    used.dedup();
}

fn qmat<'a>(m: &ExpertMatrix<'a>) -> QMatrix<'a> {
    QMatrix {
        ty: m.ty,
        n_in: m.n_in,
        n_out: m.n_out,
        data: m.data,
    }
}

/// `m2[t] = Σ_e w_{t,e} · down_e(gelu(gate_e(xb[t])) ⊙ up_e(xb[t]))`. Tokens are grouped by
/// expert so each expert's matrices are read once per batch (llama.cpp `mul_mat_id`), and the
/// experts go to the thread pool together: one region for every gate and up matrix, one for
/// every down matrix. The experts come from `s.used` (sorted, distinct), announced to the
/// pager by the caller. One token (decode) shares one quantized input across all experts.
pub(super) fn run_experts(
    c: &Config,
    il: usize,
    pager: &mut Pager,
    s: &mut State,
    n: usize,
) -> Result<()> {
    let (d, k, nf) = (c.base.n_embd, c.n_expert_used, c.n_ff_exp);
    grow(&mut s.m2, n * d);
    s.m2[..n * d].fill(0.0);
    // s.rows[s.row_start[i]..s.row_start[i + 1]]: (token, weight) routed to expert s.used[i]
    // (a counting sort by expert: within an expert, tokens ascending)
    s.row_start.clear();
    s.row_start.resize(s.used.len() + 1, 0);
    let next = &mut s.expert_next;
    next.clear();
    next.resize(c.n_expert, 0);
    for &e in &s.top_ids[..n * k] {
        next[e] += 1;
    }
    let mut total = 0;
    for (i, &e) in s.used.iter().enumerate() {
        s.row_start[i] = total;
        (next[e], total) = (total, total + next[e]);
    }
    s.row_start[s.used.len()] = total;
    s.rows.clear();
    s.rows.resize(total, (0, 0.0));
    s.tok_rows.clear();
    s.tok_rows.resize(n * k, 0);
    for t in 0..n {
        for j in 0..k {
            let e = s.top_ids[t * k + j];
            s.rows[next[e]] = (t, s.top_w[t * k + j]);
            s.tok_rows[t * k + j] = next[e];
            next[e] += 1;
        }
        // rows are grouped by ascending expert: sorted, a token's rows go by ascending expert
        s.tok_rows[t * k..(t + 1) * k].sort_unstable();
    }
    grow(&mut s.eg, total * nf);
    grow(&mut s.eu, total * nf);
    grow(&mut s.ed, total * d);
    if n > 1 {
        grow(&mut s.xe, total * d);
        let (rows, xb) = (&s.rows, &s.xb);
        Pool::current().for_chunks(&mut s.xe[..total * d], d, |j, row| {
            let t = rows[j].0;
            row.copy_from_slice(&xb[t * d..(t + 1) * d]);
        });
    }
    // experts in groups that fit one region of Matmul::matmul_each and the pager's budget
    let group = pager.hold_limit(il).min(16);
    let (used, starts) = (&s.used, &s.row_start);
    for g0 in (0..used.len()).step_by(group) {
        let g1 = (g0 + group).min(used.len());
        let held = pager.get_all(il, &used[g0..g1])?;
        let slices = held
            .iter()
            .map(|h| h.slices())
            .collect::<Result<Vec<_>>>()?;
        let (r0, r1) = (starts[g0], starts[g1]);
        let m = |i: usize| starts[i + 1] - starts[i];
        // gate and up: every expert of the group over its own tokens (decode: the one token)
        let inputs: Vec<ops::Rows> = if n == 1 {
            vec![ops::Rows {
                x: &s.xb[..d],
                n: 1,
            }]
        } else {
            (g0..g1)
                .map(|i| ops::Rows {
                    x: &s.xe[starts[i] * d..starts[i + 1] * d],
                    n: m(i),
                })
                .collect()
        };
        let input_of = |i: usize| if n == 1 { 0 } else { i - g0 };
        let gates: Vec<QMatrix> = slices.iter().map(|x| qmat(&x.gate)).collect();
        let ups: Vec<QMatrix> = slices.iter().map(|x| qmat(&x.up)).collect();
        let downs: Vec<QMatrix> = slices.iter().map(|x| qmat(&x.down)).collect();
        let mut items = Vec::with_capacity(2 * (g1 - g0));
        for i in g0..g1 {
            items.push((&gates[i - g0], input_of(i)));
            items.push((&ups[i - g0], input_of(i)));
        }
        let mut outs: Vec<&mut [f32]> = Vec::with_capacity(2 * (g1 - g0));
        let (mut eg, mut eu) = (&mut s.eg[r0 * nf..r1 * nf], &mut s.eu[r0 * nf..r1 * nf]);
        for i in g0..g1 {
            let (a, rest) = std::mem::take(&mut eg).split_at_mut(m(i) * nf);
            let (b, rest_u) = std::mem::take(&mut eu).split_at_mut(m(i) * nf);
            outs.push(a);
            outs.push(b);
            eg = rest;
            eu = rest_u;
        }
        s.mm.matmul_each(&inputs, &items, &mut outs)?;
        drop(outs);
        let gelu = s.mm.ggml_gelu();
        ops::geglu_inplace(&mut s.eg[r0 * nf..r1 * nf], &s.eu[r0 * nf..r1 * nf], gelu);
        // down: each expert over its own GeGLU rows
        let inputs: Vec<ops::Rows> = (g0..g1)
            .map(|i| ops::Rows {
                x: &s.eg[starts[i] * nf..starts[i + 1] * nf],
                n: m(i),
            })
            .collect();
        let items: Vec<(&QMatrix, usize)> = downs.iter().enumerate().map(|(j, w)| (w, j)).collect();
        let mut outs: Vec<&mut [f32]> = Vec::with_capacity(g1 - g0);
        let mut ed = &mut s.ed[r0 * d..r1 * d];
        for i in g0..g1 {
            let (a, rest) = std::mem::take(&mut ed).split_at_mut(m(i) * d);
            outs.push(a);
            ed = rest;
        }
        s.mm.matmul_each(&inputs, &items, &mut outs)?;
    }
    // weighted sum, experts in ascending order for every token (the same order as ever)
    let (rows, tok_rows, ed) = (&s.rows, &s.tok_rows, &s.ed);
    Pool::current().for_chunks(&mut s.m2[..n * d], d, |t, m2| {
        for &j in &tok_rows[t * k..(t + 1) * k] {
            let wt = rows[j].1;
            for (o, &y) in m2.iter_mut().zip(&ed[j * d..(j + 1) * d]) {
                *o += wt * y;
            }
        }
    });
    Ok(())
}
