//! MXFP4 (OCP microscaling FP4): 32 E2M1 values sharing one E8M0 power-of-two scale.
//! Used by gpt-oss style MoE files. Dequantization only.

use std::mem::size_of;

pub const QK_MXFP4: usize = 32;

/// E2M1 values, doubled so they are integers (ggml `kvalues_mxfp4`); the scale is halved to match.
pub const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// ggml `block_mxfp4`: y = e8m0_half(e) · KVALUES[q]; low nibbles are elements 0..16.
#[repr(C)]
pub struct BlockMXFP4 {
    pub e: u8,
    pub qs: [u8; QK_MXFP4 / 2],
}

const _: () = assert!(size_of::<BlockMXFP4>() == 17);

/// 2^(e − 127) / 2, built from bits: ggml `ggml_e8m0_to_fp32_half`. For e < 2 the result is
/// an f32 subnormal.
#[inline]
pub(crate) fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        (e as u32 - 1) << 23
    };
    f32::from_bits(bits)
}

pub(crate) fn dequantize_mxfp4(b: &[u8], y: &mut [f32]) {
    let d = e8m0_to_f32_half(b[0]);
    for j in 0..QK_MXFP4 / 2 {
        let q = b[1 + j];
        y[j] = KVALUES_MXFP4[(q & 0x0f) as usize] as f32 * d;
        y[j + QK_MXFP4 / 2] = KVALUES_MXFP4[(q >> 4) as usize] as f32 * d;
    }
}
