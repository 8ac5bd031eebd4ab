//! Tiled attention with an online softmax (flash-attention style): never a
//! `[tokens × context]` score matrix, only one `[block]` score row per query head at a time.
//!
//! Work is cut into items (KV head, query tile, key split): each item streams its key range
//! in blocks of [`BLOCK`] keys, dequantized once per block into a small per-thread buffer
//! (f16 / q8_0 caches are read directly through [`KvBlocks`]) and shared by every query of the
//! tile and every query head of the GQA group. Items run in parallel on rayon; a query whose
//! keys were split over several items (split-K, used for decode at depth) has its partial
//! results `(max, sum, Σ p·v)` merged at the end.
//!
//! Masks: causal (`key ≤ query`), an optional sliding window (`query − key < window`: the key
//! range of a tile starts at its first query's window, so a sliding layer never reads outside
//! it), and optional bidirectional spans (positions of one span see each other — reserved for
//! image tokens on sliding layers).

use std::ops::Range;

use rayon::prelude::*;

use super::dot;

/// Keys per block.
pub const BLOCK: usize = 64;
/// Queries per tile (prefill).
const TILE: usize = 16;

/// A cache that hands out dequantized rows of one KV head.
pub trait KvBlocks: Sync {
    fn head_dim(&self) -> usize;
    /// K of positions `t0 .. t0 + out.len()/head_dim` for KV head `g`, row-major.
    fn keys(&self, g: usize, t0: usize, out: &mut [f32]);
    /// V of the same positions.
    fn values(&self, g: usize, t0: usize, out: &mut [f32]);
}

/// One attention call: `n` queries at positions `p0..p0+n`, every key already in the cache.
pub struct Flash<'a> {
    /// `[n × n_head × head_dim]`, RoPE applied.
    pub q: &'a [f32],
    pub n: usize,
    pub p0: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    /// Multiplies the scores.
    pub scale: f32,
    /// Sliding window (the query sees itself and `window − 1` earlier keys).
    pub window: Option<usize>,
    /// Position ranges whose members see each other regardless of order (still windowed).
    pub bidirectional: &'a [Range<usize>],
}

impl Flash<'_> {
    fn first_key(&self, pos: usize) -> usize {
        self.window.map_or(0, |w| (pos + 1).saturating_sub(w))
    }

    fn last_key(&self, pos: usize) -> usize {
        self.bidirectional
            .iter()
            .find(|r| r.contains(&pos))
            .map_or(pos, |r| r.end - 1)
            .min(self.p0 + self.n - 1)
            .max(pos)
    }
}

struct Item {
    g: usize,
    tile: Range<usize>,
    keys: Range<usize>,
}

/// Partial state of one (query, head) over one key range.
struct Partial {
    /// `[tile × group]` maxima and sums
    m: Vec<f32>,
    l: Vec<f32>,
    /// `[tile × group × hd]`
    acc: Vec<f32>,
}

#[derive(Default)]
struct Scratch {
    k: Vec<f32>,
    v: Vec<f32>,
    s: Vec<f32>,
}

/// `out[t, h] = Σ_k softmax_k(scale · q[t,h]·K[k]) V[k]` over the visible keys,
/// `out` laid out like `q`.
pub fn attention(kv: &dyn KvBlocks, f: &Flash, out: &mut [f32]) {
    let hd = kv.head_dim();
    let group = f.n_head / f.n_kv_head;
    let threads = rayon::current_num_threads().max(1);
    // tiles of queries, then split each tile's key range so there is work for every thread
    let tiles: Vec<Range<usize>> = (0..f.n)
        .step_by(TILE)
        .map(|a| a..(a + TILE).min(f.n))
        .collect();
    let base = tiles.len() * f.n_kv_head;
    let mut items = Vec::new();
    for tile in &tiles {
        let k0 = f.first_key(f.p0 + tile.start);
        let k1 = (tile.clone())
            .map(|t| f.last_key(f.p0 + t) + 1)
            .max()
            .unwrap_or(k0);
        let n_blocks = (k1 - k0).div_ceil(BLOCK).max(1);
        let splits = (2 * threads).div_ceil(base).clamp(1, n_blocks);
        let per = n_blocks.div_ceil(splits) * BLOCK;
        for g in 0..f.n_kv_head {
            let mut a = k0;
            while a < k1 {
                let b = (a + per).min(k1);
                items.push(Item {
                    g,
                    tile: tile.clone(),
                    keys: a..b,
                });
                a = b;
            }
        }
    }
    let run = |sc: &mut Scratch, it: &Item| partial(kv, f, hd, group, it, sc);
    let parts: Vec<Partial> = if items.len() == 1 {
        vec![run(&mut Scratch::default(), &items[0])]
    } else {
        items.par_iter().map_init(Scratch::default, run).collect()
    };
    merge(f, hd, group, &items, &parts, out);
}

fn partial(
    kv: &dyn KvBlocks,
    f: &Flash,
    hd: usize,
    group: usize,
    it: &Item,
    sc: &mut Scratch,
) -> Partial {
    let nt = it.tile.len();
    let mut p = Partial {
        m: vec![f32::NEG_INFINITY; nt * group],
        l: vec![0.0; nt * group],
        acc: vec![0.0; nt * group * hd],
    };
    let qd = f.n_head * hd;
    sc.k.resize(BLOCK * hd, 0.0);
    sc.v.resize(BLOCK * hd, 0.0);
    sc.s.resize(BLOCK, 0.0);
    let mut b0 = it.keys.start;
    while b0 < it.keys.end {
        let b1 = (b0 + BLOCK).min(it.keys.end);
        let nb = b1 - b0;
        kv.keys(it.g, b0, &mut sc.k[..nb * hd]);
        kv.values(it.g, b0, &mut sc.v[..nb * hd]);
        for (ti, t) in it.tile.clone().enumerate() {
            let pos = f.p0 + t;
            let lo = f.first_key(pos).max(b0);
            let hi = (f.last_key(pos) + 1).min(b1);
            if lo >= hi {
                continue;
            }
            for hh in 0..group {
                let h = it.g * group + hh;
                let q = &f.q[t * qd + h * hd..][..hd];
                let s = &mut sc.s[..hi - lo];
                let mut mx = f32::NEG_INFINITY;
                for (j, sj) in s.iter_mut().enumerate() {
                    let r = lo - b0 + j;
                    *sj = dot(q, &sc.k[r * hd..(r + 1) * hd]) * f.scale;
                    mx = mx.max(*sj);
                }
                let i = ti * group + hh;
                let acc = &mut p.acc[i * hd..(i + 1) * hd];
                if mx > p.m[i] {
                    let c = (p.m[i] - mx).exp();
                    p.l[i] *= c;
                    for a in acc.iter_mut() {
                        *a *= c;
                    }
                    p.m[i] = mx;
                }
                let m = p.m[i];
                let mut sum = 0f32;
                for (j, &sj) in s.iter().enumerate() {
                    let e = (sj - m).exp();
                    sum += e;
                    let r = lo - b0 + j;
                    for (a, &x) in acc.iter_mut().zip(&sc.v[r * hd..(r + 1) * hd]) {
                        *a += e * x;
                    }
                }
                p.l[i] += sum;
            }
        }
        b0 = b1;
    }
    p
}

fn merge(f: &Flash, hd: usize, group: usize, items: &[Item], parts: &[Partial], out: &mut [f32]) {
    let qd = f.n_head * hd;
    let n = f.n * f.n_head;
    let mut m = vec![f32::NEG_INFINITY; n];
    for (it, p) in items.iter().zip(parts) {
        for (ti, t) in it.tile.clone().enumerate() {
            for hh in 0..group {
                let h = it.g * group + hh;
                let i = t * f.n_head + h;
                m[i] = m[i].max(p.m[ti * group + hh]);
            }
        }
    }
    let mut l = vec![0f32; n];
    out[..f.n * qd].fill(0.0);
    for (it, p) in items.iter().zip(parts) {
        for (ti, t) in it.tile.clone().enumerate() {
            for hh in 0..group {
                let h = it.g * group + hh;
                let i = t * f.n_head + h;
                let j = ti * group + hh;
                if p.l[j] == 0.0 {
                    continue;
                }
                let c = (p.m[j] - m[i]).exp();
                l[i] += p.l[j] * c;
                let o = &mut out[t * qd + h * hd..][..hd];
                for (o, &a) in o.iter_mut().zip(&p.acc[j * hd..(j + 1) * hd]) {
                    *o += a * c;
                }
            }
        }
    }
    for (i, o) in out[..f.n * qd].chunks_exact_mut(hd).enumerate() {
        if l[i] > 0.0 {
            let inv = 1.0 / l[i];
            for x in o {
                *x *= inv;
            }
        }
    }
}
