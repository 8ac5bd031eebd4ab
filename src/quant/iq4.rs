//! IQ4_NL (32-element blocks) and IQ4_XS (256-element super-blocks): 4-bit indices into a
//! fixed non-linear codebook. Dequantization only; these are read from third-party files.

use super::float::f16_at;
use super::k_quants::QK_K;
use std::mem::size_of;

pub const QK4_NL: usize = 32;

/// ggml `kvalues_iq4nl`.
pub const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// ggml `block_iq4_nl`: y = d · KVALUES[q]; low nibbles are elements 0..16.
#[repr(C)]
pub struct BlockIQ4NL {
    pub d: u16,
    pub qs: [u8; QK4_NL / 2],
}
/// ggml `block_iq4_xs`: 8 sub-blocks of 32 with 6-bit scales (low 4 bits in `scales_l`,
/// high 2 bits in `scales_h`), biased by 32.
#[repr(C)]
pub struct BlockIQ4XS {
    pub d: u16,
    pub scales_h: u16,
    pub scales_l: [u8; QK_K / 64],
    pub qs: [u8; QK_K / 2],
}

const _: () = assert!(size_of::<BlockIQ4NL>() == 18);
const _: () = assert!(size_of::<BlockIQ4XS>() == 136);

pub(crate) fn dequantize_iq4_nl(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b);
    for j in 0..QK4_NL / 2 {
        let q = b[2 + j];
        y[j] = d * KVALUES_IQ4NL[(q & 0x0f) as usize] as f32;
        y[j + QK4_NL / 2] = d * KVALUES_IQ4NL[(q >> 4) as usize] as f32;
    }
}

pub(crate) fn dequantize_iq4_xs(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b);
    let scales_h = u16::from_le_bytes([b[2], b[3]]);
    let scales_l = &b[4..8];
    let qs = &b[8..136];
    for ib in 0..QK_K / 32 {
        let ls = ((scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f) as i32
            | ((((scales_h >> (2 * ib)) & 3) as i32) << 4);
        let dl = d * (ls - 32) as f32;
        let q = &qs[16 * ib..16 * ib + 16];
        let y = &mut y[32 * ib..32 * ib + 32];
        for j in 0..16 {
            y[j] = dl * KVALUES_IQ4NL[(q[j] & 0x0f) as usize] as f32;
            y[j + 16] = dl * KVALUES_IQ4NL[(q[j] >> 4) as usize] as f32;
        }
    }
}
