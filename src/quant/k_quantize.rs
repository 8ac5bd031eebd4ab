//! Reference K-quant quantizers (no importance matrix), ported operation for operation from
//! ggml `ggml-quants.c`: `quantize_row_q{4,5,6,8}_K_ref` with their scale searches
//! `make_qkx2_quants` (Q4_K/Q5_K: per sub-block scale *and* min, a grid of 20 / 15 trial
//! scales each refined by least squares) and `make_qx_quants` (Q6_K: symmetric scale, 18 trial
//! scales scored by weighted squared error). This is what llama-quantize runs when no imatrix
//! is given, so the same f32 input gives the same bytes (checked against a llama.cpp-made file
//! in tests/quant.rs). Float expressions keep C's evaluation order and never fuse (no
//! `mul_add`), because the reference is compiled without FP contraction.

use super::float::f16_bits;
use super::k_quants::{get_scale_min_k4, QK_K};

/// ggml `GROUP_MAX_EPS`: below this a group is treated as all zero.
const GROUP_MAX_EPS: f32 = 1e-15;

/// Round to nearest, ties to even, via the 1.5·2^23 trick: ggml `nearest_int`. Valid for
/// |x| ≤ 2^22, which every caller guarantees by construction (bounded quant levels).
#[inline]
pub(crate) fn nearest_int(fval: f32) -> i32 {
    debug_assert!(fval.abs() <= 4_194_303.0 || !fval.is_finite());
    let val = fval + 12_582_912.0;
    (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// Best scale and min for `x` with levels 0..=nmax, minimising Σ w·(scale·L + min − x)².
/// Returns (scale, −min) and writes the levels to `l`. ggml `make_qkx2_quants`.
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l[..n].fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l[i] = q as u8;
        let diff = scale * q as f32 + min - x[i];
        best_error += weights[i] * (diff * diff);
    }
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = q as u8;
            let w = weights[i];
            let lf = q as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * (diff * diff);
            }
            if cur_error < best_error {
                l[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Levels in −nmax..nmax−1 (stored +nmax) for the symmetric scale that maximises
/// (Σ w·x·l)² / Σ w·l² with w = x², over 19 trial scales. ggml `make_qx_quants` with
/// `rmse_type = 1` and no quant weights.
fn make_qx_quants(nmax: i32, x: &[f32], l: &mut [i8]) -> f32 {
    let n = x.len();
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l[..n].fill(0);
        return 0.0;
    }
    let mut iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..n {
        let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l[i] = (q + nmax) as i8;
        let w = x[i] * x[i];
        sumlx += w * x[i] * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for &v in x {
            let q = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
            let w = v * v;
            sumlx += w * v * q as f32;
            suml2 += w * q as f32 * q as f32;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for i in 0..n {
                let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
                l[i] = (q + nmax) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Packs 8 six-bit scales and mins into the 12-byte Q4_K/Q5_K field (inverse of
/// `get_scale_min_k4`).
pub(crate) fn pack_scales_k4(ls: &[u8; 8], lm: &[u8; 8], out: &mut [u8]) {
    out[..12].fill(0);
    for j in 0..8 {
        if j < 4 {
            out[j] = ls[j];
            out[j + 4] = lm[j];
        } else {
            out[j + 4] = (ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4);
            out[j - 4] |= (ls[j] >> 4) << 6;
            out[j] |= (lm[j] >> 4) << 6;
        }
    }
}

/// Shared body of Q4_K (nmax 15) and Q5_K (nmax 31): per-32 scale/min search, 6-bit
/// quantization of those against the block maxima, then requantization of every element
/// with the *stored* (f16- and 6-bit-rounded) scale and min. Writes `d`, `dmin`, scales and
/// returns the levels.
fn quantize_kx_scales(x: &[f32], nmax: i32, rmin: f32, nstep: i32, head: &mut [u8]) -> [u8; QK_K] {
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 32];
    let mut weights = [0.0f32; 32];
    let mut scales = [0.0f32; 8];
    let mut mins = [0.0f32; 8];
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let (s, m) = make_qkx2_quants(
            nmax,
            xs,
            &weights,
            &mut l[32 * j..32 * j + 32],
            &mut laux,
            rmin,
            0.1,
            nstep,
        );
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    for j in 0..8 {
        // `uint8_t ls = nearest_int(...)` wraps, then MIN(63, ls).
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    let d_bits = f16_bits(max_scale / 63.0);
    let dmin_bits = f16_bits(max_min / 63.0);
    head[0..2].copy_from_slice(&d_bits.to_le_bytes());
    head[2..4].copy_from_slice(&dmin_bits.to_le_bytes());
    pack_scales_k4(&ls, &lm, &mut head[4..16]);
    let d_all = half::f16::from_bits(d_bits).to_f32();
    let dmin_all = half::f16::from_bits(dmin_bits).to_f32();
    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, &head[4..16]);
        let d = d_all * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin_all * m as f32;
        for ii in 0..32 {
            l[32 * j + ii] = nearest_int((x[32 * j + ii] + dm) / d).clamp(0, nmax) as u8;
        }
    }
    l
}

/// `quantize_row_q4_K_ref` for one 256-element super-block.
pub(crate) fn quantize_q4_k(x: &[f32], b: &mut [u8]) {
    let l = quantize_kx_scales(x, 15, -1.0, 20, &mut b[..16]);
    let q = &mut b[16..144];
    for k in 0..4 {
        for i in 0..32 {
            q[32 * k + i] = l[64 * k + i] | (l[64 * k + i + 32] << 4);
        }
    }
}

/// `quantize_row_q5_K_ref` for one 256-element super-block.
pub(crate) fn quantize_q5_k(x: &[f32], b: &mut [u8]) {
    let l = quantize_kx_scales(x, 31, -0.5, 15, &mut b[..16]);
    let (qh, ql) = b[16..176].split_at_mut(32);
    qh.fill(0);
    let (mut m1, mut m2) = (1u8, 2u8);
    for k in 0..4 {
        for j in 0..32 {
            let mut l1 = l[64 * k + j];
            if l1 > 15 {
                l1 -= 16;
                qh[j] |= m1;
            }
            let mut l2 = l[64 * k + j + 32];
            if l2 > 15 {
                l2 -= 16;
                qh[j] |= m2;
            }
            ql[32 * k + j] = l1 | (l2 << 4);
        }
        m1 <<= 2;
        m2 <<= 2;
    }
}

/// `quantize_row_q6_K_ref` for one 256-element super-block.
pub(crate) fn quantize_q6_k(x: &[f32], b: &mut [u8]) {
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; 16];
    let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
    for ib in 0..16 {
        let s = make_qx_quants(32, &x[16 * ib..16 * ib + 16], &mut l[16 * ib..16 * ib + 16]);
        scales[ib] = s;
        if s.abs() > max_abs_scale {
            max_abs_scale = s.abs();
            max_scale = s;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        b[..210].fill(0);
        return;
    }
    let iscale = -128.0 / max_scale;
    let d_bits = f16_bits(1.0 / iscale);
    b[208..210].copy_from_slice(&d_bits.to_le_bytes());
    let mut sc = [0i8; 16];
    for ib in 0..16 {
        sc[ib] = nearest_int(iscale * scales[ib]).min(127) as i8;
        b[192 + ib] = sc[ib] as u8;
    }
    let d_all = half::f16::from_bits(d_bits).to_f32();
    for j in 0..16 {
        let d = d_all * sc[j] as f32;
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(x[16 * j + ii] / d).clamp(-32, 31);
            l[16 * j + ii] = (q + 32) as i8;
        }
    }
    let (ql, rest) = b.split_at_mut(128);
    let qh = &mut rest[..64];
    for n in 0..2 {
        let lb = &l[128 * n..128 * n + 128];
        for i in 0..32 {
            let (q1, q2, q3, q4) = (
                lb[i] as u8,
                lb[i + 32] as u8,
                lb[i + 64] as u8,
                lb[i + 96] as u8,
            );
            ql[64 * n + i] = (q1 & 0x0f) | ((q3 & 0x0f) << 4);
            ql[64 * n + i + 32] = (q2 & 0x0f) | ((q4 & 0x0f) << 4);
            qh[32 * n + i] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
    }
}

/// `quantize_row_q8_K_ref`: iscale = −127 / max with `max` the signed value of largest
/// magnitude, q = min(127, nearest_int(iscale·x)), d = 1 / iscale (an f32), and the sum of
/// each 16 quants in `bsums`. (Older ggml used −128; −127 since the IQ2_XXS kernels.)
pub(crate) fn quantize_q8_k(x: &[f32], b: &mut [u8]) {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        // ggml leaves bsums untouched here; zero them so the block is fully defined.
        b[..292].fill(0);
        return;
    }
    let iscale = -127.0 / max;
    let mut qs = [0i8; QK_K];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for (j, chunk) in qs.chunks_exact(16).enumerate() {
        let sum: i16 = chunk.iter().map(|&q| q as i16).sum();
        b[260 + 2 * j..262 + 2 * j].copy_from_slice(&sum.to_le_bytes());
    }
    for (o, q) in b[4..260].iter_mut().zip(qs) {
        *o = q as u8;
    }
    b[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
}
