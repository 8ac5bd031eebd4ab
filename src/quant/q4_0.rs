//! The 32-element "legacy" blocks: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0.
//! Layouts and reference rounding follow ggml `ggml-common.h` / `ggml-quants.c`
//! (`quantize_row_q4_0_ref` ...), which is what llama-quantize writes without an imatrix.

use super::float::{f16_at, f16_bits};
use std::mem::size_of;

pub const QK: usize = 32;

/// ggml `block_q4_0`: y = d · (q − 8); low nibbles are elements 0..16, high nibbles 16..32.
#[repr(C)]
pub struct BlockQ4_0 {
    pub d: u16,
    pub qs: [u8; QK / 2],
}
/// ggml `block_q4_1`: y = d · q + m.
#[repr(C)]
pub struct BlockQ4_1 {
    pub d: u16,
    pub m: u16,
    pub qs: [u8; QK / 2],
}
/// ggml `block_q5_0`: y = d · (q − 16); bit j of `qh` is the fifth bit of element j.
#[repr(C)]
pub struct BlockQ5_0 {
    pub d: u16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}
/// ggml `block_q5_1`: y = d · q + m.
#[repr(C)]
pub struct BlockQ5_1 {
    pub d: u16,
    pub m: u16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}
/// ggml `block_q8_0`: y = d · q, q signed.
#[repr(C)]
pub struct BlockQ8_0 {
    pub d: u16,
    pub qs: [i8; QK],
}

const _: () = assert!(size_of::<BlockQ4_0>() == 18);
const _: () = assert!(size_of::<BlockQ4_1>() == 20);
const _: () = assert!(size_of::<BlockQ5_0>() == 22);
const _: () = assert!(size_of::<BlockQ5_1>() == 24);
const _: () = assert!(size_of::<BlockQ8_0>() == 34);

// ---- dequantization (one block: `b` is block_bytes long, `y` is 32 long) ----

pub(crate) fn dequantize_q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b);
    for j in 0..QK / 2 {
        let q = b[2 + j];
        y[j] = ((q & 0x0f) as i32 - 8) as f32 * d;
        y[j + QK / 2] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

pub(crate) fn dequantize_q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b), f16_at(&b[2..]));
    for j in 0..QK / 2 {
        let q = b[4 + j];
        y[j] = (q & 0x0f) as f32 * d + m;
        y[j + QK / 2] = (q >> 4) as f32 * d + m;
    }
}

pub(crate) fn dequantize_q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for j in 0..QK / 2 {
        let q = b[6 + j];
        let h0 = ((qh >> j) & 1) << 4;
        let h1 = ((qh >> (j + 16)) & 1) << 4;
        y[j] = (((q & 0x0f) as u32 | h0) as i32 - 16) as f32 * d;
        y[j + QK / 2] = (((q >> 4) as u32 | h1) as i32 - 16) as f32 * d;
    }
}

pub(crate) fn dequantize_q5_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b), f16_at(&b[2..]));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    for j in 0..QK / 2 {
        let q = b[8 + j];
        let h0 = ((qh >> j) & 1) << 4;
        let h1 = ((qh >> (j + 16)) & 1) << 4;
        y[j] = ((q & 0x0f) as u32 | h0) as f32 * d + m;
        y[j + QK / 2] = ((q >> 4) as u32 | h1) as f32 * d + m;
    }
}

pub(crate) fn dequantize_q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b);
    for j in 0..QK {
        y[j] = b[2 + j] as i8 as f32 * d;
    }
}

// ---- reference quantization (one block of 32 `x` into `b`) ----

/// First element of largest magnitude, with its sign (ggml keeps the first on ties).
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// `quantize_row_q4_0_ref`: d = max / −8 so the extreme value maps to q = 0.
pub(crate) fn quantize_q4_0(x: &[f32], b: &mut [u8]) {
    let d = signed_absmax(x) / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    b[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
    for j in 0..QK / 2 {
        // `(int8_t)(v + 8.5f)` truncates toward zero; `as i8` does too for in-range values.
        let q0 = ((x[j] * id + 8.5) as i8).min(15) as u8;
        let q1 = ((x[j + QK / 2] * id + 8.5) as i8).min(15) as u8;
        b[2 + j] = q0 | (q1 << 4);
    }
}

/// `quantize_row_q4_1_ref`: d = (max − min) / 15, m = min.
pub(crate) fn quantize_q4_1(x: &[f32], b: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    b[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
    b[2..4].copy_from_slice(&f16_bits(min).to_le_bytes());
    for j in 0..QK / 2 {
        let q0 = (((x[j] - min) * id + 0.5) as i8).min(15) as u8;
        let q1 = (((x[j + QK / 2] - min) * id + 0.5) as i8).min(15) as u8;
        b[4 + j] = q0 | (q1 << 4);
    }
}

/// `quantize_row_q5_0_ref`: d = max / −16.
pub(crate) fn quantize_q5_0(x: &[f32], b: &mut [u8]) {
    let d = signed_absmax(x) / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    b[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
    let mut qh = 0u32;
    for j in 0..QK / 2 {
        let q0 = ((x[j] * id + 16.5) as i8).min(31) as u8;
        let q1 = ((x[j + QK / 2] * id + 16.5) as i8).min(31) as u8;
        b[6 + j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
        qh |= (((q0 & 0x10) >> 4) as u32) << j;
        qh |= (((q1 & 0x10) >> 4) as u32) << (j + QK / 2);
    }
    b[2..6].copy_from_slice(&qh.to_le_bytes());
}

/// `quantize_row_q5_1_ref`: d = (max − min) / 31, m = min.
pub(crate) fn quantize_q5_1(x: &[f32], b: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    b[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
    b[2..4].copy_from_slice(&f16_bits(min).to_le_bytes());
    let mut qh = 0u32;
    for j in 0..QK / 2 {
        // ggml casts to uint8_t without a clamp; the largest value is 31.5 -> 31.
        let q0 = ((x[j] - min) * id + 0.5) as u8;
        let q1 = ((x[j + QK / 2] - min) * id + 0.5) as u8;
        b[8 + j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
        qh |= (((q0 & 0x10) >> 4) as u32) << j;
        qh |= (((q1 & 0x10) >> 4) as u32) << (j + QK / 2);
    }
    b[4..8].copy_from_slice(&qh.to_le_bytes());
}

/// `quantize_row_q8_0_ref`: d = amax / 127, q = roundf(x / d) (ties away from zero).
/// The same function quantizes activations for the Q4_0/Q5_0/Q8_0 dot kernels.
pub(crate) fn quantize_q8_0(x: &[f32], b: &mut [u8]) {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    b[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
    for j in 0..QK {
        b[2 + j] = (x[j] * id).round() as i8 as u8;
    }
}
