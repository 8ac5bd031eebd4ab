//! K-quant super-blocks of 256 elements (Q2_K ... Q6_K, Q8_K): layouts and dequantization.
//! Layouts are ggml's `ggml-common.h` with QK_K = 256; the dequantizers follow
//! `dequantize_row_q*_K` in `ggml-quants.c` operation for operation, so results are bit-exact.

use super::float::f16_at;
use std::mem::size_of;

pub const QK_K: usize = 256;
/// Bytes of the packed 6-bit scales/mins of Q4_K and Q5_K.
pub const K_SCALE_SIZE: usize = 12;

/// ggml `block_q2_K`: 16 sub-blocks of 16; y = d·(sc & 15)·q − dmin·(sc >> 4).
#[repr(C)]
pub struct BlockQ2K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: u16,
    pub dmin: u16,
}
/// ggml `block_q3_K`: 16 sub-blocks of 16 with 6-bit signed scales; high bit in `hmask`.
#[repr(C)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; 12],
    pub d: u16,
}
/// ggml `block_q4_K`: 8 sub-blocks of 32 with 6-bit scales and mins; y = d·sc·q − dmin·m.
#[repr(C)]
pub struct BlockQ4K {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qs: [u8; QK_K / 2],
}
/// ggml `block_q5_K`: Q4_K plus a fifth bit per element in `qh`.
#[repr(C)]
pub struct BlockQ5K {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}
/// ggml `block_q6_K`: 16 sub-blocks of 16 with int8 scales; y = d·sc·(q − 32).
#[repr(C)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: u16,
}
/// ggml `block_q8_K`: the activation type the K-quant dot kernels use; `d` is an f32 and
/// `bsums` holds the sum of each 16 quants (used to apply the K-quant mins cheaply).
#[repr(C)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}

const _: () = assert!(size_of::<BlockQ2K>() == 84);
const _: () = assert!(size_of::<BlockQ3K>() == 110);
const _: () = assert!(size_of::<BlockQ4K>() == 144);
const _: () = assert!(size_of::<BlockQ5K>() == 176);
const _: () = assert!(size_of::<BlockQ6K>() == 210);
const _: () = assert!(size_of::<BlockQ8K>() == 292);

/// Unpacks scale and min `j` (0..8) of the 12-byte Q4_K/Q5_K field: ggml `get_scale_min_k4`.
#[inline]
pub(crate) fn get_scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Q2_K/Q3_K: `f(is, i0, q, shift, y)` for each of the 16 sub-blocks of 16 in ggml's
/// order. Sub-block `is` is the 2-bit field at `shift` of the 16 bytes `q`, which stand at
/// `i0..i0 + 16` of their 32-byte quarter of `qs`; `y` its 16 outputs.
fn for_each_sub16(
    qs: &[u8],
    y: &mut [f32],
    mut f: impl FnMut(usize, usize, &[u8], u32, &mut [f32]),
) {
    let mut is = 0;
    for n in 0..2 {
        let q = &qs[32 * n..32 * n + 32];
        for shift in [0u32, 2, 4, 6] {
            for i0 in [0, 16] {
                f(
                    is,
                    i0,
                    &q[i0..i0 + 16],
                    shift,
                    &mut y[16 * is..16 * is + 16],
                );
                is += 1;
            }
        }
    }
}

pub(crate) fn dequantize_q2_k(b: &[u8], y: &mut [f32]) {
    let scales = &b[0..16];
    let qs = &b[16..80];
    let d = f16_at(&b[80..]);
    let min = f16_at(&b[82..]);
    for_each_sub16(qs, y, |is, _, q, shift, y| {
        let sc = scales[is];
        let dl = d * (sc & 0x0f) as f32;
        let ml = min * (sc >> 4) as f32;
        for l in 0..16 {
            y[l] = dl * ((q[l] >> shift) & 3) as f32 - ml;
        }
    });
}

/// Unpacks the 16 6-bit Q3_K scales (still biased by 32).
pub(crate) fn q3_k_scales(s: &[u8]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0x0f } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = (low | (high << 4)) as i8;
    }
    out
}

pub(crate) fn dequantize_q3_k(b: &[u8], y: &mut [f32]) {
    let hm = &b[0..32];
    let qs = &b[32..96];
    let scales = q3_k_scales(&b[96..108]);
    let d_all = f16_at(&b[108..]);
    for_each_sub16(qs, y, |is, i0, q, shift, y| {
        let dl = d_all * (scales[is] as i32 - 32) as f32;
        // the high bit of the elements at `shift`: bit `4n + shift/2` of hmask
        let m = 1u8 << (is / 2);
        for l in 0..16 {
            let lo = ((q[l] >> shift) & 3) as i32;
            let v = lo - if hm[i0 + l] & m != 0 { 0 } else { 4 };
            y[l] = dl * v as f32;
        }
    });
}

/// Q4_K/Q5_K: the scale and min `(d · sc, dmin · m)` of sub-blocks `2k` and `2k + 1`.
fn sub_block_scales_k4(d: f32, min: f32, scales: &[u8], k: usize) -> [(f32, f32); 2] {
    [2 * k, 2 * k + 1].map(|j| {
        let (sc, m) = get_scale_min_k4(j, scales);
        (d * sc as f32, min * m as f32)
    })
}

pub(crate) fn dequantize_q4_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b);
    let min = f16_at(&b[2..]);
    let scales = &b[4..16];
    let qs = &b[16..144];
    for k in 0..4 {
        let q = &qs[32 * k..32 * k + 32];
        let [(d1, m1), (d2, m2)] = sub_block_scales_k4(d, min, scales, k);
        let y = &mut y[64 * k..64 * k + 64];
        for l in 0..32 {
            y[l] = d1 * (q[l] & 0x0f) as f32 - m1;
            y[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

pub(crate) fn dequantize_q5_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b);
    let min = f16_at(&b[2..]);
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    let (mut u1, mut u2) = (1u8, 2u8);
    for k in 0..4 {
        let ql = &qs[32 * k..32 * k + 32];
        let [(d1, m1), (d2, m2)] = sub_block_scales_k4(d, min, scales, k);
        let y = &mut y[64 * k..64 * k + 64];
        for l in 0..32 {
            let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            y[l] = d1 * ((ql[l] & 0x0f) + h1) as f32 - m1;
            y[l + 32] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
        }
        u1 <<= 2;
        u2 <<= 2;
    }
}

pub(crate) fn dequantize_q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(&b[208..]);
    for n in 0..2 {
        let ql = &b[64 * n..64 * n + 64];
        let qh = &b[128 + 32 * n..128 + 32 * n + 32];
        let sc = &b[192 + 8 * n..192 + 8 * n + 8];
        let y = &mut y[128 * n..128 * n + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            // `d * sc * q` groups as (d * sc) * q, as in C.
            y[l] = d * sc[is] as i8 as f32 * q1 as f32;
            y[l + 32] = d * sc[is + 2] as i8 as f32 * q2 as f32;
            y[l + 64] = d * sc[is + 4] as i8 as f32 * q3 as f32;
            y[l + 96] = d * sc[is + 6] as i8 as f32 * q4 as f32;
        }
    }
}

pub(crate) fn dequantize_q8_k(b: &[u8], y: &mut [f32]) {
    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    for j in 0..QK_K {
        y[j] = d * b[4 + j] as i8 as f32;
    }
}
