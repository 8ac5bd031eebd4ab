//! Flash attention as ggml's CPU runs it (`ggml_compute_forward_flash_attn_ext_f16`, ops.cpp),
//! F16 K/V cache: what llama.cpp runs by default on the CPU (`-fa auto` = on, `-ctk f16 -ctv
//! f16`), reproduced op for op (see docs/flash-attn-parity.md).

use std::ops::Range;

use rayon::prelude::*;

use super::{dot_f32, expf, fma_row, reduce_add16};
use crate::gguf::GgmlType;
use crate::kernels::{Isa, KernelTable};
use crate::ops::flash::KvBlocks;
use crate::ops::pool::Pool;

/// `GGML_FA_TILE_Q`: a batch of at least this many query rows takes the tiled path.
pub const FA_TILE_Q: usize = 64;
/// `GGML_FA_TILE_KV`: keys per tile of the tiled path (tiles start at cell 0).
pub const FA_TILE_KV: usize = 64;
/// Query positions per work item (any grouping gives the same bits: rows are independent).
/// Small, so that the items (whose cost grows with their position) balance across threads.
const FA_ITEM_ROWS: usize = 8;

/// One `flash_attn_ext` call: `n` query rows at positions `p0..p0+n`, all their keys in the
/// cache (stored as F16, read back exactly as f32 through [`KvBlocks`]).
pub struct FlashAttnExt<'a> {
    /// `[n × n_head × head_dim]`, RoPE applied and already multiplied by the attention scale
    /// (llama.cpp's Gemma 3 graph scales Q; `kq_scale` = 1).
    pub q: &'a [f32],
    pub n: usize,
    pub p0: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    /// Sliding window: a query sees itself and `window − 1` earlier keys.
    pub window: Option<usize>,
}

/// `ggml_vec_dot_f16` (vec.cpp, AVX-512): on AVX-512 the F16 dot reuses the F32 layout (four
/// 16-lane FMA accumulators over `n & !63`, [`super::reduce_add4x16`]), the total kept in f64
/// with the leftovers added as f64 products. `x` and `y` hold F16 values (exact in f32).
pub fn dot_f16(x: &[f32], y: &[f32]) -> f32 {
    let np = x.len() & !63;
    let mut s = dot_f32(&x[..np], &y[..np]) as f64;
    for (a, b) in x[np..].iter().zip(&y[np..]) {
        s += (a * b) as f64;
    }
    s as f32
}

/// Round to F16 and back (`GGML_CPU_FP32_TO_FP16`, round to nearest even).
#[inline]
fn f16r(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// Running state of one query row.
#[derive(Default)]
struct FaRow {
    m: f32,
    s: f32,
    /// f32 accumulator (tiled path) or F16 values held in f32 (one-chunk path, `VKQ16`)
    vkq: Vec<f32>,
}

impl FaRow {
    /// A fresh row state of head dimension `hd`, reusing the buffers.
    fn reset(&mut self, hd: usize) {
        self.m = f32::NEG_INFINITY;
        self.s = 0.0;
        self.vkq.clear();
        self.vkq.resize(hd, 0.0);
    }

    /// `vkq ← f32(f16(vkq))`, round to nearest even like `_mm512_cvtps_ph(x, 0)` (a C kernel:
    /// through `half`'s slices, eight values a call, it was half of the attention's time).
    fn round_f16(&mut self) {
        KernelTable::detect().ggml_round_f16_row(&mut self.vkq);
    }
}

/// The kernels' `attn_axpy` where it is ggml's FMA chain bit for bit: F32 rows on the AVX-512
/// and AVX2 kernels over whole vectors (`n` a multiple of 32) are one `fma(p_j, V_j[i], acc)`
/// per row `j` in order, as [`fma_row`] (the scalar kernel rounds the product first).
fn fa_axpy() -> Option<&'static KernelTable> {
    let k = KernelTable::detect();
    matches!(k.isa(), Isa::Avx512 | Isa::Avx2).then_some(k)
}

/// The KV tiles `(c0, m)` over positions `lo..=hi`: `m` keys from `c0`, the tiles aligned on
/// positions (multiples of [`FA_TILE_KV`]).
fn kv_tiles(lo: usize, hi: usize) -> impl Iterator<Item = (usize, usize)> {
    (lo / FA_TILE_KV * FA_TILE_KV..=hi)
        .step_by(FA_TILE_KV)
        .map(move |c0| (c0, FA_TILE_KV.min(hi + 1 - c0)))
}

/// The keys one query row sees of a KV tile: the tile starts at position `c0`, keys
/// `first..=pos` are visible.
#[derive(Clone, Copy)]
struct Visible {
    c0: usize,
    first: usize,
    pos: usize,
}

impl Visible {
    /// Whether the tile's key `j` is visible.
    fn sees(&self, j: usize) -> bool {
        (self.first..=self.pos).contains(&(self.c0 + j))
    }
}

/// `ggml_compute_forward_flash_attn_ext_tiled` for one query row and one KV tile of `m` keys
/// (`kt`: K transposed, `[hd × FA_TILE_KV]`; `v`: `[m × hd]`).
#[cfg(test)]
fn fa_tiled_step(q: &[f32], kt: &[f32], v: &[f32], vis: Visible, r: &mut FaRow) {
    let m = v.len() / q.len();
    let acc = fa_tiled_scores(q, kt, m);
    fa_tiled_rest(&acc[..m], v, None, vis, r);
}

/// simd_gemm's Q·K of one row: one FMA chain over d from 0 per key (the 64 keys' chains side
/// by side).
fn fa_tiled_scores(q: &[f32], kt: &[f32], m: usize) -> [f32; FA_TILE_KV] {
    let mut acc = [0f32; FA_TILE_KV];
    for (&qd, kd) in q.iter().zip(kt.chunks_exact(FA_TILE_KV)) {
        fma_row(&mut acc[..m], &kd[..m], qd);
    }
    acc
}

/// The rest of `fa_tiled_step` given the row's `m` scores `acc`: mask, online softmax, P·V.
/// `vb`: the same V rows as f32 bytes (4-aligned) for one `attn_axpy` call.
fn fa_tiled_rest(
    acc: &[f32],
    v: &[f32],
    vb: Option<(&KernelTable, &[u8])>,
    vis: Visible,
    r: &mut FaRow,
) {
    let hd = r.vkq.len();
    let m = acc.len();
    // ×scale (1) and + mask (0 / −inf)
    let mut kq = [[f32::NEG_INFINITY; 16]; FA_TILE_KV / 16];
    for j in (0..m).filter(|&j| vis.sees(j)) {
        kq[j / 16][j % 16] = acc[j];
    }
    let tile_max = kq
        .iter()
        .flatten()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    if tile_max == f32::NEG_INFINITY {
        return;
    }
    let mnew = r.m.max(tile_max);
    if mnew > r.m {
        let ms = (r.m - mnew).exp(); // libm expf
        for x in r.vkq.iter_mut() {
            *x *= ms;
        }
        r.s *= ms;
    }
    r.m = mnew;
    // ggml_vec_soft_max_f32: ggml_v_expf per lane, each 16 reduced in f32, summed in f64
    let mut sum = 0f64;
    for g in kq.iter_mut() {
        for x in g.iter_mut() {
            *x = expf(*x - mnew);
        }
        sum += reduce_add16(g) as f64;
    }
    r.s = (r.s as f64 + sum) as f32;
    // simd_gemm: VKQ[d] = fma(p_j, V[j][d], VKQ[d]) for j in order (masked p_j = 0: skipped);
    // the visible keys of a tile are one run
    let (jlo, jhi) = (
        vis.first.saturating_sub(vis.c0).min(m),
        (vis.pos + 1).saturating_sub(vis.c0).min(m),
    );
    let p = kq.as_flattened();
    if let Some((k, vb)) = vb.filter(|_| hd % 32 == 0 && jlo < jhi) {
        let done = k.attn_axpy(
            GgmlType::F32,
            hd,
            jhi - jlo,
            &vb[4 * jlo * hd..],
            4 * hd,
            &p[jlo..jhi],
            FA_TILE_KV,
            1,
            &mut r.vkq,
            hd,
        );
        if done.is_ok() {
            return;
        }
    }
    for j in (0..m).filter(|&j| vis.sees(j)) {
        fma_row(&mut r.vkq, &v[j * hd..(j + 1) * hd], p[j]);
    }
}

/// `len` bytes of `buf` from a 4-byte aligned start (grown as needed).
fn aligned4(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buf.len() < len + 4 {
        buf.resize(len + 4, 0);
    }
    let off = buf.as_ptr().align_offset(4).min(4);
    &mut buf[off..off + len]
}

/// f32 values into `out` as native-endian bytes.
fn put_f32(out: &mut [u8], x: &[f32]) {
    for (o, v) in out.chunks_exact_mut(4).zip(x) {
        o.copy_from_slice(&v.to_ne_bytes());
    }
}

/// `ggml_compute_forward_flash_attn_ext_f16_one_chunk` (F16 K and V) for one query row over
/// one KV tile: `q16` is Q rounded to F16, keys one at a time with a libm-`expf` online
/// softmax and an F16 `VKQ16` accumulator (`ggml_vec_scale_f16`, `ggml_vec_mad_f16`).
fn fa_chunk_step(q16: &[f32], k: &[f32], v: &[f32], vis: Visible, r: &mut FaRow) {
    let hd = q16.len();
    let m = k.len() / hd;
    for j in (0..m).filter(|&j| vis.sees(j)) {
        let s = dot_f16(&k[j * hd..(j + 1) * hd], q16);
        let (mut ms, mut vs) = (1f32, 1f32);
        if s > r.m {
            let mold = r.m;
            r.m = s;
            ms = (mold - s).exp();
            for x in r.vkq.iter_mut() {
                *x *= ms;
            }
            r.round_f16();
        } else {
            vs = (s - r.m).exp();
        }
        fma_row(&mut r.vkq, &v[j * hd..(j + 1) * hd], vs);
        r.round_f16();
        // `S = S*ms + vs`: GCC contracts it to one FMA (gnu++17, -ffp-contract=fast; one
        // `vfmadd132ss` in the reference build's ops.cpp.o)
        r.s = r.s.mul_add(ms, vs);
    }
}

/// ggml's CPU flash attention over an F16 K/V cache, bit for bit (AVX-512 build): batches of
/// at least [`FA_TILE_Q`] rows take the tiled path (f32 Q, 64-key tiles, per-tile max,
/// [`expf`] probabilities), smaller batches and decode the one-chunk path (F16 Q, per-key
/// online softmax, F16 V accumulator). `out` is laid out like `q`.
///
/// Tiles are aligned on positions, as llama.cpp's cells are for a cache filled from position 0
/// without wrapping (always so for perplexity). Not emulated: llama.cpp's split-KV decode
/// (one query row over a KV view of ≥ 512 cells, i.e. past 256 cached positions), which sums
/// per-thread partials, and its cell order once a sliding-window ring wraps.
pub fn flash_attn_ext(kv: &dyn KvBlocks, f: &FlashAttnExt, out: &mut [f32]) {
    let hd = kv.head_dim();
    let nh = f.n_head;
    let run = |t0: usize, heads: Range<usize>, out: &mut [f32]| {
        FA_SCRATCH.with(|sc| match sc.try_borrow_mut() {
            Ok(mut sc) => fa_item(kv, f, t0, heads, out, &mut sc),
            // (re-entered on this thread: fresh buffers)
            Err(_) => fa_item(kv, f, t0, heads, out, &mut FaScratch::default()),
        })
    };
    if f.n == 1 {
        // decode: one query row, its heads split over the pool's threads (each head is its
        // own online softmax: the same bits however they are grouped)
        let pool = Pool::current();
        let per = nh.div_ceil(pool.n_threads()).max(1);
        pool.for_chunks(&mut out[..nh * hd], per * hd, |i, o| {
            let h0 = i * per;
            run(0, h0..h0 + o.len() / hd, o)
        });
        return;
    }
    let item = FA_ITEM_ROWS * nh * hd;
    // later rows see more keys: hand out the costliest items first so the threads finish
    // together
    let mut items: Vec<(usize, &mut [f32])> =
        out[..f.n * nh * hd].chunks_mut(item).enumerate().collect();
    items.reverse();
    items
        .into_par_iter()
        .with_max_len(1)
        .for_each(|(ci, out)| run(ci * FA_ITEM_ROWS, 0..nh, out));
}

/// Per-thread buffers of [`flash_attn_ext`], kept from call to call (no allocation once warm).
#[derive(Default)]
struct FaScratch {
    kb: Vec<f32>,
    vb: Vec<f32>,
    kt: Vec<f32>,
    /// `[rows × hd]` queries of one KV head (F16-rounded on the one-chunk path)
    q: Vec<f32>,
    rows: Vec<FaRow>,
    /// the `attn_axpy` path: K tile transposed and V tile as f32 bytes, scores `[rows × 64]`
    ktb: Vec<u8>,
    vbb: Vec<u8>,
    kq: Vec<f32>,
}

/// [`fa_tiled_scores`] from the K tile held as f32 bytes.
fn fa_tiled_scores_bytes(q: &[f32], ktb: &[u8], m: usize) -> [f32; FA_TILE_KV] {
    let mut acc = [0f32; FA_TILE_KV];
    let mut kd = [0f32; FA_TILE_KV];
    for (&qd, row) in q.iter().zip(ktb.chunks_exact(4 * FA_TILE_KV)) {
        for (x, b) in kd.iter_mut().zip(row.chunks_exact(4)) {
            *x = f32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        }
        fma_row(&mut acc[..m], &kd[..m], qd);
    }
    acc
}

thread_local! {
    static FA_SCRATCH: std::cell::RefCell<FaScratch> = std::cell::RefCell::default();
}

/// Query heads `heads` of rows `t0 .. t0 + out.len() / (heads.len() · hd)` of
/// [`flash_attn_ext`], into `out` laid out `[row × heads × hd]` (so a part of the heads only
/// for one row).
fn fa_item(
    kv: &dyn KvBlocks,
    f: &FlashAttnExt,
    t0: usize,
    heads: Range<usize>,
    out: &mut [f32],
    sc: &mut FaScratch,
) {
    let hd = kv.head_dim();
    let group = f.n_head / f.n_kv_head;
    let nhp = heads.len();
    let tiled = f.n >= FA_TILE_Q;
    let first_of = |pos: usize| f.window.map_or(0, |w| (pos + 1).saturating_sub(w));
    let nt = out.len() / (nhp * hd);
    let (lo, hi) = (first_of(f.p0 + t0), f.p0 + t0 + nt - 1);
    let nr = nt * group;
    let FaScratch {
        kb,
        vb,
        kt,
        q: qs,
        rows,
        ktb,
        vbb,
        kq,
    } = sc;
    // tiled path on AVX-512/AVX2: all scores of a tile in one attn_axpy call, P·V in one per row
    let axpy = fa_axpy().filter(|_| tiled);
    let ktb = aligned4(
        ktb,
        if axpy.is_some() {
            4 * FA_TILE_KV * hd
        } else {
            0
        },
    );
    let vbb = aligned4(
        vbb,
        if axpy.is_some() {
            4 * FA_TILE_KV * hd
        } else {
            0
        },
    );
    if axpy.is_some() && kq.len() < nr * FA_TILE_KV {
        kq.resize(nr * FA_TILE_KV, 0.0);
    }
    for b in [&mut *kb, &mut *vb] {
        if b.len() < FA_TILE_KV * hd {
            b.resize(FA_TILE_KV * hd, 0.0);
        }
    }
    if tiled && kt.len() < FA_TILE_KV * hd {
        kt.resize(FA_TILE_KV * hd, 0.0);
    }
    if qs.len() < nr * hd {
        qs.resize(nr * hd, 0.0);
    }
    if rows.len() < nr {
        rows.resize_with(nr, FaRow::default);
    }
    for g in 0..f.n_kv_head {
        // this KV head's query heads among `heads`
        let hs = heads.start.max(g * group)..heads.end.min((g + 1) * group);
        if hs.is_empty() {
            continue;
        }
        let gs = hs.len();
        let (qs, rows) = (&mut qs[..nt * gs * hd], &mut rows[..nt * gs]);
        // rows (t, head) of this KV head, and their Q (F16-rounded on the one-chunk path)
        for (i, (qv, r)) in qs.chunks_exact_mut(hd).zip(rows.iter_mut()).enumerate() {
            let (t, h) = (i / gs, hs.start + i % gs);
            let at = ((t0 + t) * f.n_head + h) * hd;
            qv.copy_from_slice(&f.q[at..at + hd]);
            if !tiled {
                qv.iter_mut().for_each(|x| *x = f16r(*x));
            }
            r.reset(hd);
        }
        for (c0, m) in kv_tiles(lo, hi) {
            kv.keys(g, c0, &mut kb[..m * hd]);
            kv.values(g, c0, &mut vb[..m * hd]);
            let (k, v) = (&kb[..m * hd], &vb[..m * hd]);
            let visible = |pos: usize| Visible {
                c0,
                first: first_of(pos),
                pos,
            };
            if let Some(kern) = axpy {
                // K tile transposed (as ggml packs it for simd_gemm), as f32 bytes; columns
                // from m on hold an earlier tile's keys, whose scores are not read
                for (j, kr) in k.chunks_exact(hd).enumerate() {
                    for (d, &x) in kr.iter().enumerate() {
                        let at = 4 * (d * FA_TILE_KV + j);
                        ktb[at..at + 4].copy_from_slice(&x.to_ne_bytes());
                    }
                }
                put_f32(&mut vbb[..4 * m * hd], v);
                let kq = &mut kq[..nt * gs * FA_TILE_KV];
                kq.fill(0.0);
                let scored = kern.attn_axpy(
                    GgmlType::F32,
                    FA_TILE_KV,
                    hd,
                    ktb,
                    4 * FA_TILE_KV,
                    qs,
                    hd,
                    nt * gs,
                    kq,
                    FA_TILE_KV,
                );
                for (i, (qv, r)) in qs.chunks_exact(hd).zip(rows.iter_mut()).enumerate() {
                    let pos = f.p0 + t0 + i / gs;
                    let own;
                    let acc = if scored.is_ok() {
                        &kq[i * FA_TILE_KV..i * FA_TILE_KV + m]
                    } else {
                        // (not reached: the sizes are right) the same chains through fma_row
                        own = fa_tiled_scores_bytes(qv, ktb, m);
                        &own[..m]
                    };
                    let vrows = Some((kern, &vbb[..4 * m * hd]));
                    fa_tiled_rest(acc, v, vrows, visible(pos), r);
                }
            } else if tiled {
                // K tile transposed, as ggml packs it for simd_gemm
                for (j, kr) in k.chunks_exact(hd).enumerate() {
                    for (d, &x) in kr.iter().enumerate() {
                        kt[d * FA_TILE_KV + j] = x;
                    }
                }
                for (i, (qv, r)) in qs.chunks_exact(hd).zip(rows.iter_mut()).enumerate() {
                    let pos = f.p0 + t0 + i / gs;
                    let acc = fa_tiled_scores(qv, &kt[..FA_TILE_KV * hd], m);
                    fa_tiled_rest(&acc[..m], v, None, visible(pos), r);
                }
            } else {
                for (i, (qv, r)) in qs.chunks_exact(hd).zip(rows.iter_mut()).enumerate() {
                    let pos = f.p0 + t0 + i / gs;
                    fa_chunk_step(qv, k, v, visible(pos), r);
                }
            }
        }
        for (i, r) in rows.iter().enumerate() {
            let (t, h) = (i / gs, hs.start + i % gs - heads.start);
            let inv = if r.s == 0.0 { 0.0 } else { 1.0 / r.s };
            let o = &mut out[(t * nhp + h) * hd..(t * nhp + h + 1) * hd];
            for (o, x) in o.iter_mut().zip(&r.vkq) {
                *o = x * inv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ops::flash::F32Rows as Rows;

    /// Plain f64 softmax attention of query row `qv` at `pos` (KV head `g`).
    fn naive(r: &Rows, qv: &[f32], g: usize, first: usize, pos: usize) -> Vec<f64> {
        let hd = r.hd;
        let row = |x: &[f32], t: usize| {
            let at = (t * r.n_kv + g) * hd;
            x[at..at + hd].to_vec()
        };
        let s: Vec<f64> = (first..=pos)
            .map(|t| {
                row(&r.k, t)
                    .iter()
                    .zip(qv)
                    .map(|(a, b)| (a * b) as f64)
                    .sum()
            })
            .collect();
        let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
        let z: f64 = e.iter().sum();
        let mut out = vec![0f64; hd];
        for (t, p) in (first..=pos).zip(&e) {
            for (o, x) in out.iter_mut().zip(row(&r.v, t)) {
                *o += p / z * x as f64;
            }
        }
        out
    }

    /// Head dim, query heads and KV heads of the test calls.
    const HD: usize = 64;
    const NH: usize = 4;
    const NKV: usize = 2;

    /// Smooth F16-exact K and V rows for `len` positions of `nkv` heads.
    fn smooth_rows(len: usize, nkv: usize, hd: usize) -> Rows {
        let val = |i: usize, f: f32| f16r(((i as f32) * f).sin());
        Rows {
            hd,
            n_kv: nkv,
            k: (0..len * nkv * hd).map(|i| val(i, 0.37)).collect(),
            v: (0..len * nkv * hd).map(|i| val(i, 0.11)).collect(),
        }
    }

    /// `flash_attn_ext` over `n` query rows at `p0..` on smooth F16 K/V and queries: the
    /// rows, the queries and the output.
    fn run_flash(n: usize, p0: usize, window: Option<usize>) -> (Rows, Vec<f32>, Vec<f32>) {
        let (hd, nh, nkv) = (HD, NH, NKV);
        let r = smooth_rows(p0 + n, nkv, hd);
        let q: Vec<f32> = (0..n * nh * hd)
            .map(|i| ((i as f32) * 0.23).cos())
            .collect();
        let f = FlashAttnExt {
            q: &q,
            n,
            p0,
            n_head: nh,
            n_kv_head: nkv,
            window,
        };
        let mut out = vec![f32::NAN; n * nh * hd];
        flash_attn_ext(&r, &f, &mut out);
        (r, q, out)
    }

    fn check_flash(n: usize, p0: usize, window: Option<usize>, tol: f64) {
        let (hd, nh, nkv) = (HD, NH, NKV);
        let (r, q, out) = run_flash(n, p0, window);
        for t in 0..n {
            let pos = p0 + t;
            let first = window.map_or(0, |w| (pos + 1).saturating_sub(w));
            for h in 0..nh {
                let at = (t * nh + h) * hd;
                let want = naive(&r, &q[at..at + hd], h / (nh / nkv), first, pos);
                for (d, (g, w)) in out[at..at + hd].iter().zip(&want).enumerate() {
                    assert!(
                        (*g as f64 - w).abs() < tol,
                        "n {n} pos {pos} head {h} dim {d}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn flash_tiled_path_is_softmax_attention() {
        // 70 rows ≥ FA_TILE_Q: f32 accumulators, several 64-key tiles
        check_flash(70, 0, None, 1e-5);
        check_flash(70, 30, Some(40), 1e-5);
    }

    /// The tiled path as `flash_attn_ext` runs it (one `attn_axpy` for a tile's scores and one
    /// per row for P·V where the ISA allows) gives the bits of the `fma_row` statement.
    #[test]
    fn flash_tiled_path_gives_the_fma_row_bits() {
        let (hd, nh, nkv, n, p0, window) = (HD, NH, NKV, 70, 30, Some(50));
        let (r, q, got) = run_flash(n, p0, window);
        let (mut kb, mut vb) = (vec![0f32; FA_TILE_KV * hd], vec![0f32; FA_TILE_KV * hd]);
        let mut kt = vec![0f32; FA_TILE_KV * hd];
        for t in 0..n {
            let pos = p0 + t;
            let first = window.map_or(0, |w| (pos + 1).saturating_sub(w));
            for h in 0..nh {
                let g = h / (nh / nkv);
                let at = (t * nh + h) * hd;
                let mut row = FaRow::default();
                row.reset(hd);
                for (c0, m) in kv_tiles(first, pos) {
                    r.keys(g, c0, &mut kb[..m * hd]);
                    r.values(g, c0, &mut vb[..m * hd]);
                    for (j, kr) in kb[..m * hd].chunks_exact(hd).enumerate() {
                        for (d, &x) in kr.iter().enumerate() {
                            kt[d * FA_TILE_KV + j] = x;
                        }
                    }
                    let qv = &q[at..at + hd];
                    let vis = Visible { c0, first, pos };
                    fa_tiled_step(qv, &kt, &vb[..m * hd], vis, &mut row);
                }
                for (d, (g, x)) in got[at..at + hd].iter().zip(&row.vkq).enumerate() {
                    let want = x * (1.0 / row.s);
                    assert_eq!(g.to_bits(), want.to_bits(), "pos {pos} head {h} dim {d}");
                }
            }
        }
    }

    #[test]
    fn flash_one_chunk_path_is_softmax_attention() {
        // under 64 rows and decode: F16 Q and an F16 accumulator (≈ 1e-3 relative)
        check_flash(5, 0, None, 2e-3);
        check_flash(1, 130, None, 2e-3);
        check_flash(3, 100, Some(20), 2e-3);
    }

    /// Decode splits a row's query heads over threads, also inside one KV head's group: every
    /// split gives the bits of the whole row in one call.
    #[test]
    fn decode_head_split_gives_the_bits_of_one_call() {
        let (hd, nh) = (HD, 6);
        for (nkv, window) in [(1, None), (2, Some(50)), (3, None)] {
            let p0 = 90;
            let r = smooth_rows(p0 + 1, nkv, hd);
            let q: Vec<f32> = (0..nh * hd).map(|i| ((i as f32) * 0.23).cos()).collect();
            let f = FlashAttnExt {
                q: &q,
                n: 1,
                p0,
                n_head: nh,
                n_kv_head: nkv,
                window,
            };
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            let mut whole = vec![f32::NAN; nh * hd];
            fa_item(&r, &f, 0, 0..nh, &mut whole, &mut FaScratch::default());
            for cuts in [
                &[0, 1, 6][..],
                &[0, 2, 3, 5, 6],
                &[0, 4, 6],
                &[0, 1, 2, 3, 4, 5, 6],
            ] {
                let mut got = vec![f32::NAN; nh * hd];
                for w in cuts.windows(2) {
                    let o = &mut got[w[0] * hd..w[1] * hd];
                    fa_item(&r, &f, 0, w[0]..w[1], o, &mut FaScratch::default());
                }
                assert_eq!(bits(&got), bits(&whole), "kv heads {nkv}, cuts {cuts:?}");
            }
            let mut pooled = vec![f32::NAN; nh * hd];
            flash_attn_ext(&r, &f, &mut pooled);
            assert_eq!(bits(&pooled), bits(&whole), "kv heads {nkv}, pooled");
        }
    }

    #[test]
    fn dot_f16_adds_leftovers_in_f64() {
        let x: Vec<f32> = (0..70).map(|i| f16r((i as f32).cos())).collect();
        let y: Vec<f32> = (0..70).map(|i| f16r((i as f32 * 0.5).sin())).collect();
        let head = dot_f32(&x[..64], &y[..64]) as f64;
        let tail: f64 = x[64..]
            .iter()
            .zip(&y[64..])
            .map(|(a, b)| (a * b) as f64)
            .sum();
        assert_eq!(dot_f16(&x, &y), (head + tail) as f32);
    }
}
