//! Tiled attention with an online softmax (flash-attention style): never a
//! `[tokens × context]` score matrix, only one `[block]` score row per query head at a time.
//!
//! Work is cut into items (KV head, query tile, key split): each item streams its key range
//! in blocks of [`BLOCK`] keys shared by every query of the tile and every query head of the
//! GQA group. Caches that hand out their stored f16 / q8_0 rows ([`KvBlocks::raw_values`])
//! run on the C kernels in place: scores by a strided gemm of the K rows against the group's
//! queries (q8_0 queries for a q8_0 cache), P·V by `attn_axpy`; K = V layers score
//! `(q ⊙ norm)·V` plus a small gemm over the RoPE-rotated dims only. Other caches (f32) are
//! dequantized per block into a per-thread buffer and take the plain Rust loops. Items run in
//! parallel on the thread pool (`ops::pool`); a query whose keys were split over several items (split-K, used for
//! decode at depth) has its partial results `(max, sum, Σ p·v)` merged at the end.
//!
//! Masks: causal (`key ≤ query`), an optional sliding window (`query − key < window`: the key
//! range of a tile starts at its first query's window, so a sliding layer never reads outside
//! it), and optional bidirectional spans (positions of one span see each other — reserved for
//! image tokens on sliding layers).

use std::ops::Range;

use super::pool::{Disjoint, Pool};

use super::dot;
use crate::gguf::GgmlType;
use crate::kernels::KernelTable;

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
    /// The stored K rows of KV head `g` from position `t0` on, as many as lie contiguously
    /// (at most `n`), for the kernels; `None` when the cache cannot hand them out (then
    /// [`KvBlocks::keys`] is used) or on a K = V layer.
    fn raw_keys(&self, _g: usize, _t0: usize, _n: usize) -> Option<RawRows<'_>> {
        None
    }
    /// Same for V.
    fn raw_values(&self, _g: usize, _t0: usize, _n: usize) -> Option<RawRows<'_>> {
        None
    }
    /// Set on a K = V layer: `k = RoPE(v ⊙ norm)`.
    fn key_from_value(&self) -> Option<KeyFromValue<'_>> {
        None
    }
}

/// K/V held as plain f32 rows `[position × n_kv × hd]`: the simplest [`KvBlocks`], for tests
/// and reference computations.
pub struct F32Rows {
    pub hd: usize,
    pub n_kv: usize,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
}

impl F32Rows {
    fn copy(&self, x: &[f32], g: usize, t0: usize, out: &mut [f32]) {
        for (j, o) in out.chunks_exact_mut(self.hd).enumerate() {
            let at = ((t0 + j) * self.n_kv + g) * self.hd;
            o.copy_from_slice(&x[at..at + self.hd]);
        }
    }
}

impl KvBlocks for F32Rows {
    fn head_dim(&self) -> usize {
        self.hd
    }
    fn keys(&self, g: usize, t0: usize, out: &mut [f32]) {
        self.copy(&self.k, g, t0, out)
    }
    fn values(&self, g: usize, t0: usize, out: &mut [f32]) {
        self.copy(&self.v, g, t0, out)
    }
}

/// Stored rows of one KV head: row `j` is `bytes[j·stride ..][..row_bytes(ty, head_dim)]`.
pub struct RawRows<'a> {
    /// F16 or Q8_0
    pub ty: GgmlType,
    pub bytes: &'a [u8],
    /// bytes between rows
    pub stride: usize,
    /// rows
    pub n: usize,
}

/// How a K = V layer derives its key from the stored value: `k = RoPE(v ⊙ norm, t)`, NEOX
/// pairs `(i, i + inv_freq.len())`.
pub struct KeyFromValue<'a> {
    pub norm: &'a [f32],
    pub inv_freq: &'a [f32],
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

    /// The keys `lo..hi` of the block `b0..b1` that query row `t` sees (none if `lo >= hi`).
    fn keys_in(&self, t: usize, b0: usize, b1: usize) -> (usize, usize) {
        let pos = self.p0 + t;
        (
            self.first_key(pos).max(b0),
            (self.last_key(pos) + 1).min(b1),
        )
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

/// What every item of one [`attention`] call reads.
#[derive(Clone, Copy)]
struct Job<'a> {
    kv: &'a dyn KvBlocks,
    f: &'a Flash<'a>,
    hd: usize,
    /// query heads per KV head
    group: usize,
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

impl Partial {
    /// No keys seen yet for `rows` query rows of `hd` dims.
    fn empty(rows: usize, hd: usize) -> Partial {
        let mut p = Partial {
            m: Vec::new(),
            l: Vec::new(),
            acc: Vec::new(),
        };
        p.reset(rows, hd);
        p
    }

    /// Raises row `i`'s running maximum to `mx` if that is larger, rescaling its sum and its
    /// accumulator (`hd` values); returns the maximum.
    #[inline]
    fn raise_max(&mut self, i: usize, hd: usize, mx: f32) -> f32 {
        if mx > self.m[i] {
            let c = (self.m[i] - mx).exp();
            self.l[i] *= c;
            for a in &mut self.acc[i * hd..(i + 1) * hd] {
                *a *= c;
            }
            self.m[i] = mx;
        }
        self.m[i]
    }

    /// [`Partial::empty`] in place, keeping the buffers (no allocation once warm).
    fn reset(&mut self, rows: usize, hd: usize) {
        self.m.clear();
        self.m.resize(rows, f32::NEG_INFINITY);
        self.l.clear();
        self.l.resize(rows, 0.0);
        self.acc.clear();
        self.acc.resize(rows * hd, 0.0);
    }
}

#[derive(Default)]
struct Scratch {
    k: Vec<f32>,
    v: Vec<f32>,
    s: Vec<f32>,
    /// kernel path: the tile's queries as gemm activations (f32 or q8_0 bytes)
    qa: Vec<u8>,
    /// K = V layers: the rotated dims of the queries (f32 bytes), of the block's keys (f32
    /// bytes), their scores, one V row's rotated dims, cos/sin per (block row, pair)
    qrot: Vec<u8>,
    krot: Vec<u8>,
    s2: Vec<f32>,
    vr: Vec<f32>,
    rope: Vec<f32>,
    tmp: Vec<f32>,
}

/// `len` bytes of `buf` starting 16-byte aligned (the kernels read blocks through structs).
fn aligned(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    buf.resize(len + 16, 0);
    let off = buf.as_ptr().align_offset(16).min(16);
    &mut buf[off..off + len]
}

fn aligned_ref(buf: &[u8], len: usize) -> &[u8] {
    let off = buf.as_ptr().align_offset(16).min(16);
    &buf[off..off + len]
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
    let fast = kernel_path(kv, hd);
    let job = Job { kv, f, hd, group };
    let run = |sc: &mut Scratch, it: &Item, p: &mut Partial| match fast {
        Some(kt) => partial_kernels(kt, job, it, sc, p),
        None => partial(job, it, sc, p),
    };
    // Per-thread scratch, and the partial results kept by the calling thread from one call
    // to the next: no allocation per item once warm (memory allocated on one thread and freed
    // on another also made glibc's per-thread arenas grow without bound).
    thread_local! {
        static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
        static PARTS: std::cell::RefCell<Vec<Partial>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    PARTS.with(|parts| {
        let mut parts = parts.borrow_mut();
        if parts.len() < items.len() {
            parts.resize_with(items.len(), || Partial::empty(0, 0));
        }
        let slots = Disjoint::new(&mut parts[..items.len()]);
        Pool::current()
            .run(items.len(), |i| {
                // SAFETY: item i alone writes slot i.
                let slot = unsafe { slots.part(i, i + 1) };
                SCRATCH.with(|sc| run(&mut sc.borrow_mut(), &items[i], &mut slot[0]));
                Ok(())
            })
            .expect("attention items return no errors");
        merge(f, hd, group, &items, &parts[..items.len()], out);
    });
}

fn partial(job: Job, it: &Item, sc: &mut Scratch, p: &mut Partial) {
    let Job { kv, f, hd, group } = job;
    let nt = it.tile.len();
    p.reset(nt * group, hd);
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
            let (lo, hi) = f.keys_in(t, b0, b1);
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
                let m = p.raise_max(i, hd, mx);
                let acc = &mut p.acc[i * hd..(i + 1) * hd];
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
}

/// The C kernels serve caches that hand out f16 / q8_0 rows (K = V layers too, when their
/// rotated half-dims stay whole q8_0 blocks); f32 caches take the plain path.
fn kernel_path(kv: &dyn KvBlocks, hd: usize) -> Option<&'static KernelTable> {
    let v = kv.raw_values(0, 0, 1)?;
    if let Some(kfv) = kv.key_from_value() {
        let half = kfv.inv_freq.len();
        if kfv.norm.len() != hd || 2 * half > hd || (v.ty == GgmlType::Q8_0 && half % 32 != 0) {
            return None;
        }
    }
    Some(KernelTable::detect())
}

/// The rotated pairs `lo..hi` of a K = V layer over keys `< end`: every pair whose angle can
/// exceed 1e-9 rad (pairs inside the range with a smaller angle rotate harmlessly), rounded
/// out to whole q8_0 blocks.
fn rotated_pairs(kfv: &KeyFromValue, end: usize, ty: GgmlType) -> Range<usize> {
    let active = |w: &f32| (*w as f64) * (end as f64) >= 1e-9;
    let lo = kfv.inv_freq.iter().position(active);
    let hi = kfv.inv_freq.iter().rposition(active);
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return 0..0;
    };
    if ty == GgmlType::Q8_0 {
        lo / 32 * 32..(hi + 1).div_ceil(32) * 32
    } else {
        lo..hi + 1
    }
}

fn kernel_ok(r: crate::Result<()>) {
    // every length, stride and alignment is fixed by the cache layout checked in kernel_path
    r.expect("attention kernel arguments are consistent by construction")
}

/// [`partial`] on the C kernels: scores of a contiguous run of stored K rows against every
/// query head of the group in one gemm (q quantized to q8_0 once for a q8_0 cache, like
/// ggml), online softmax in Rust, then one `attn_axpy` per query for the P·V of the run.
fn partial_kernels(kt: &KernelTable, job: Job, it: &Item, sc: &mut Scratch, p: &mut Partial) {
    let Job { kv, f, hd, group } = job;
    let nt = it.tile.len();
    p.reset(nt * group, hd);
    let qd = f.n_head * hd;
    let kfv = kv.key_from_value();
    let Some(first) = kv.raw_values(it.g, it.keys.start, 1) else {
        return partial(job, it, sc, p);
    };
    let vty = first.ty;
    // the activation type of the score gemm: K (or V on a K = V layer) is the weight
    let act = KernelTable::vec_dot_type(vty).unwrap_or(GgmlType::F32);
    let a_row = act.row_bytes(hd as u64).unwrap_or(0) as usize;
    // queries (⊙ norm, rotated dims zeroed on a K = V layer) as activations
    let rot = kfv
        .as_ref()
        .map_or(0..0, |k| rotated_pairs(k, it.keys.end, vty));
    let nr = rot.len();
    let half = kfv.as_ref().map_or(0, |k| k.inv_freq.len());
    let nq = nt * group;
    {
        let qa = aligned(&mut sc.qa, nq * a_row);
        let qrot = aligned(&mut sc.qrot, nq * 2 * nr * 4);
        sc.tmp.resize(hd, 0.0);
        for (i, qa) in qa.chunks_exact_mut(a_row).enumerate() {
            let qr = &mut qrot[i * 2 * nr * 4..(i + 1) * 2 * nr * 4];
            let (ti, hh) = (i / group, i % group);
            let h = it.g * group + hh;
            let q = &f.q[(it.tile.start + ti) * qd + h * hd..][..hd];
            let x = &mut sc.tmp[..hd];
            x.copy_from_slice(q);
            if let Some(k) = &kfv {
                for (x, &w) in x.iter_mut().zip(k.norm) {
                    *x *= w;
                }
                for r in [rot.clone(), half + rot.start..half + rot.end] {
                    x[r].fill(0.0);
                }
                let rq = q[rot.clone()]
                    .iter()
                    .chain(&q[half + rot.start..half + rot.end]);
                for (o, &v) in qr.chunks_exact_mut(4).zip(rq) {
                    o.copy_from_slice(&v.to_ne_bytes());
                }
            }
            kernel_ok(kt.quantize_row(act, x, qa));
        }
    }
    // cos/sin of (row offset j · ω_i) for j < BLOCK (f64 recurrence), per item
    if nr > 0 {
        let k = kfv.as_ref().expect("rotated pairs only on K = V layers");
        sc.rope.resize(2 * BLOCK * nr, 0.0);
        let (cos, sin) = sc.rope.split_at_mut(BLOCK * nr);
        for (i, &w) in k.inv_freq[rot.clone()].iter().enumerate() {
            let (sd, cd) = (w as f64).sin_cos();
            let (mut s, mut c) = (0f64, 1f64);
            for j in 0..BLOCK {
                cos[j * nr + i] = c as f32;
                sin[j * nr + i] = s as f32;
                (s, c) = (s * cd + c * sd, c * cd - s * sd);
            }
        }
    }
    sc.s.resize(group * BLOCK, 0.0);
    sc.s2.resize(group * BLOCK, 0.0);
    sc.vr.resize(4 * nr, 0.0);
    sc.tmp.resize(hd.max(2 * nr), 0.0);
    let mut b0 = it.keys.start;
    while b0 < it.keys.end {
        let want = (it.keys.end - b0).min(BLOCK);
        let v = kv
            .raw_values(it.g, b0, want)
            .expect("a cache with raw rows has them for every position");
        let nb = v.n;
        let b1 = b0 + nb;
        let kr = if kfv.is_some() {
            None
        } else {
            Some(
                kv.raw_keys(it.g, b0, nb)
                    .expect("K rows are stored wherever V rows are"),
            )
        };
        let (krows, kstride) = kr
            .as_ref()
            .map_or((v.bytes, v.stride), |k| (k.bytes, k.stride));
        // K = V: the rotated dims of this block's keys, RoPE'd, as f32 rows of 2·nr
        if let (Some(k), true) = (&kfv, nr > 0) {
            derive_rotated(kt, k, &v, b0, rot.clone(), sc);
        }
        for (ti, t) in it.tile.clone().enumerate() {
            let (lo, hi) = f.keys_in(t, b0, b1);
            if lo >= hi {
                continue;
            }
            let (r0, nk) = (lo - b0, hi - lo);
            let qa = &aligned_ref(&sc.qa, nq * a_row)[ti * group * a_row..][..group * a_row];
            let s = &mut sc.s[..group * BLOCK];
            kernel_ok(kt.gemm_strided(
                vty,
                hd,
                &krows[r0 * kstride..],
                kstride,
                nk,
                qa,
                group,
                &mut *s,
                BLOCK,
            ));
            if nr > 0 {
                let qr = &aligned_ref(&sc.qrot, nq * 2 * nr * 4)[ti * group * 2 * nr * 4..]
                    [..group * 2 * nr * 4];
                let kb = &aligned_ref(&sc.krot, BLOCK * 2 * nr * 4)[r0 * 2 * nr * 4..];
                let s2 = &mut sc.s2[..group * BLOCK];
                kernel_ok(kt.gemm(
                    GgmlType::F32,
                    2 * nr,
                    &kb[..nk * 2 * nr * 4],
                    nk,
                    qr,
                    group,
                    &mut *s2,
                    BLOCK,
                ));
                for (a, b) in s.chunks_exact_mut(BLOCK).zip(s2.chunks_exact(BLOCK)) {
                    for (a, &b) in a[..nk].iter_mut().zip(&b[..nk]) {
                        *a += b;
                    }
                }
            }
            for hh in 0..group {
                let s = &mut sc.s[hh * BLOCK..][..nk];
                let mut mx = f32::NEG_INFINITY;
                for x in s.iter_mut() {
                    *x *= f.scale;
                    mx = mx.max(*x);
                }
                let i = ti * group + hh;
                let m = p.raise_max(i, hd, mx);
                let mut sum = 0f32;
                for x in s.iter_mut() {
                    *x = (*x - m).exp();
                    sum += *x;
                }
                p.l[i] += sum;
            }
            kernel_ok(kt.attn_axpy(
                vty,
                hd,
                nk,
                &v.bytes[r0 * v.stride..],
                v.stride,
                &sc.s[..group * BLOCK],
                BLOCK,
                group,
                &mut p.acc[ti * group * hd..(ti + 1) * group * hd],
                hd,
            ));
        }
        b0 = b1;
    }
}

/// `sc.krot` row j ← the rotated dims `[lo..hi) ∪ [half+lo..half+hi)` of
/// `RoPE(v_j ⊙ norm, b0 + j)` as f32 bytes; `sc.rope` holds cos/sin of `j·ω`.
fn derive_rotated(
    kt: &KernelTable,
    k: &KeyFromValue,
    v: &RawRows,
    b0: usize,
    rot: Range<usize>,
    sc: &mut Scratch,
) {
    let nr = rot.len();
    let half = k.inv_freq.len();
    let krot = aligned(&mut sc.krot, BLOCK * 2 * nr * 4);
    let (cos, sin) = sc.rope.split_at(BLOCK * nr);
    let (x, rest) = sc.vr.split_at_mut(2 * nr);
    let (cb, rest) = rest.split_at_mut(nr);
    let sb = &mut rest[..nr];
    // the block's base angle b0·ω in f64
    for ((c, s), &w) in cb
        .iter_mut()
        .zip(sb.iter_mut())
        .zip(&k.inv_freq[rot.clone()])
    {
        let (sv, cv) = ((b0 as f64) * (w as f64)).sin_cos();
        (*c, *s) = (cv as f32, sv as f32);
    }
    let rb = v.ty.row_bytes(nr as u64).unwrap_or(0) as usize;
    let off = |e: usize| v.ty.row_bytes(e as u64).unwrap_or(0) as usize;
    let one = [1f32];
    for j in 0..v.n {
        let row = &v.bytes[j * v.stride..];
        // dequantize the two rotated ranges through attn_axpy (p = 1 on a zeroed row)
        x.fill(0.0);
        let (x0, x1) = x.split_at_mut(nr);
        for (dst, e) in [(x0, rot.start), (x1, half + rot.start)] {
            kernel_ok(kt.attn_axpy(
                v.ty,
                nr,
                1,
                &row[off(e)..off(e) + rb],
                rb,
                &one,
                1,
                1,
                dst,
                nr,
            ));
        }
        let (x0, x1) = x.split_at(nr);
        let (nx0, nx1) = (
            &k.norm[rot.clone()],
            &k.norm[half + rot.start..half + rot.end],
        );
        let (cj, sj) = (&cos[j * nr..][..nr], &sin[j * nr..][..nr]);
        for i in 0..nr {
            // angle (b0 + j)·ω = b0·ω + j·ω
            let c = cb[i] * cj[i] - sb[i] * sj[i];
            let s = sb[i] * cj[i] + cb[i] * sj[i];
            let (a, b) = (x0[i] * nx0[i], x1[i] * nx1[i]);
            sc.tmp[i] = a * c - b * s;
            sc.tmp[nr + i] = b * c + a * s;
        }
        for (o, &t) in krot[j * 2 * nr * 4..(j + 1) * 2 * nr * 4]
            .chunks_exact_mut(4)
            .zip(&sc.tmp[..2 * nr])
        {
            o.copy_from_slice(&t.to_ne_bytes());
        }
    }
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
