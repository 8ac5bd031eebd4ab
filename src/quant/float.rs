//! Plain float element types: F32, F16 and BF16 rows, one element per "block".

/// Reads a little-endian IEEE half at `b[0..2]`.
#[inline]
pub(crate) fn f16_at(b: &[u8]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

/// Rounds to the nearest IEEE half (ties to even), as `GGML_FP32_TO_FP16` does, and returns its bits.
#[inline]
pub(crate) fn f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

pub(crate) fn dequantize_f32(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(4).zip(dst.iter_mut()) {
        *y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

pub(crate) fn dequantize_f16(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *y = f16_at(b);
    }
}

/// BF16 is the top half of an f32, so widening is a shift (ggml `ggml_bf16_to_fp32`).
pub(crate) fn dequantize_bf16(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *y = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16);
    }
}

pub(crate) fn quantize_f32(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.iter().zip(dst.chunks_exact_mut(4)) {
        b.copy_from_slice(&x.to_le_bytes());
    }
}

pub(crate) fn quantize_f16(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.iter().zip(dst.chunks_exact_mut(2)) {
        b.copy_from_slice(&f16_bits(*x).to_le_bytes());
    }
}

/// Round to nearest even, NaN forced quiet: ggml `ggml_compute_fp32_to_bf16`.
pub(crate) fn quantize_bf16(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.iter().zip(dst.chunks_exact_mut(2)) {
        let u = x.to_bits();
        let h = if (u & 0x7fff_ffff) > 0x7f80_0000 {
            ((u >> 16) | 64) as u16
        } else {
            ((u as u64 + (0x7fff + ((u >> 16) & 1)) as u64) >> 16) as u16
        };
        b.copy_from_slice(&h.to_le_bytes());
    }
}
