//! Quantized tensor formats: `#[repr(C)]` block layouts (identical to ggml's), the scalar
//! Rust reference dequantizers, and the weight/activation quantizers used by `lode quantize`
//! and `lode synth`. Also the llama-quant type recipe (`recipe`).
//!
//! Owns: what a block of each type means. Must not know about files, ISAs or models; the
//! SIMD dot kernels live in `kernels/` and are checked against these functions.
//!
//! Dequantization is bit-exact with the `gguf` Python package (`gguf.quants.dequantize`);
//! quantization follows ggml's `quantize_row_*_ref` (what llama-quantize runs without an
//! importance matrix).

pub mod float;
pub mod iq4;
pub mod k_quantize;
pub mod k_quants;
pub mod model;
pub mod mxfp4;
pub mod q4_0;
pub mod recipe;

pub use iq4::{BlockIQ4NL, BlockIQ4XS};
pub use k_quants::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, QK_K};
pub use mxfp4::BlockMXFP4;
pub use q4_0::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0};
pub use recipe::{ModelDesc, Recipe, Target, TensorDesc};

use crate::gguf::GgmlType;
use crate::{Error, Result};
use rayon::prelude::*;

type BlockFn<I, O> = fn(&[I], &mut [O]);

/// True for block-quantized types (everything but the plain float and integer types).
pub fn is_quantized(ty: GgmlType) -> bool {
    use GgmlType::*;
    !matches!(ty, F32 | F16 | BF16 | I8 | I16 | I32 | I64 | F64)
}

/// Types `dequantize_row` accepts.
pub const DEQUANT_TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
    GgmlType::Q8K,
    GgmlType::IQ4NL,
    GgmlType::IQ4XS,
    GgmlType::MXFP4,
];

/// Types `quantize_row` can produce.
pub const QUANT_TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
    GgmlType::Q8K,
];

fn dequant_fn(ty: GgmlType) -> Option<BlockFn<u8, f32>> {
    use GgmlType::*;
    Some(match ty {
        F32 => float::dequantize_f32,
        F16 => float::dequantize_f16,
        BF16 => float::dequantize_bf16,
        Q4_0 => q4_0::dequantize_q4_0,
        Q4_1 => q4_0::dequantize_q4_1,
        Q5_0 => q4_0::dequantize_q5_0,
        Q5_1 => q4_0::dequantize_q5_1,
        Q8_0 => q4_0::dequantize_q8_0,
        Q2K => k_quants::dequantize_q2_k,
        Q3K => k_quants::dequantize_q3_k,
        Q4K => k_quants::dequantize_q4_k,
        Q5K => k_quants::dequantize_q5_k,
        Q6K => k_quants::dequantize_q6_k,
        Q8K => k_quants::dequantize_q8_k,
        IQ4NL => iq4::dequantize_iq4_nl,
        IQ4XS => iq4::dequantize_iq4_xs,
        MXFP4 => mxfp4::dequantize_mxfp4,
        _ => return None,
    })
}

fn quant_fn(ty: GgmlType) -> Option<BlockFn<f32, u8>> {
    use GgmlType::*;
    Some(match ty {
        F32 => float::quantize_f32,
        F16 => float::quantize_f16,
        BF16 => float::quantize_bf16,
        Q4_0 => q4_0::quantize_q4_0,
        Q4_1 => q4_0::quantize_q4_1,
        Q5_0 => q4_0::quantize_q5_0,
        Q5_1 => q4_0::quantize_q5_1,
        Q8_0 => q4_0::quantize_q8_0,
        Q4K => k_quantize::quantize_q4_k,
        Q5K => k_quantize::quantize_q5_k,
        Q6K => k_quantize::quantize_q6_k,
        Q8K => k_quantize::quantize_q8_k,
        _ => return None,
    })
}

/// Bytes of a row of `n` elements of `ty`, or an error naming the block length.
fn checked_row_bytes(ty: GgmlType, n: usize) -> Result<usize> {
    ty.row_bytes(n as u64).map(|b| b as usize).ok_or_else(|| {
        Error::Input(format!(
            "{ty}: {n} elements is not a whole number of {}-element blocks",
            ty.block_len()
        ))
    })
}

/// Decodes one row: `dst.len()` elements from `src`, which must be exactly that many
/// elements' worth of `ty` blocks.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    let f = dequant_fn(ty).ok_or_else(|| Error::UnsupportedQuant(ty.name().to_string()))?;
    let want = checked_row_bytes(ty, dst.len())?;
    if src.len() != want {
        return Err(Error::Input(format!(
            "{ty}: {} elements need {want} bytes, got {}",
            dst.len(),
            src.len()
        )));
    }
    let (bl, bb) = if ty.block_len() == 1 {
        // Float types: one call for the whole row.
        (dst.len().max(1), src.len().max(1))
    } else {
        (ty.block_len(), ty.block_bytes())
    };
    for (b, y) in src.chunks_exact(bb).zip(dst.chunks_exact_mut(bl)) {
        f(b, y);
    }
    Ok(())
}

/// Decodes a whole tensor of `n_elements` (rows are contiguous, so this is one long row).
pub fn dequantize_tensor(ty: GgmlType, src: &[u8], n_elements: usize) -> Result<Vec<f32>> {
    let mut out = vec![0.0f32; n_elements];
    dequantize_row(ty, src, &mut out)?;
    Ok(out)
}

/// Encodes one row of `src.len()` elements into `dst` (exactly `row_bytes` long) with ggml's
/// reference rounding. Non-finite input is an error.
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<()> {
    let f = quant_fn(ty).ok_or_else(|| Error::UnsupportedQuant(ty.name().to_string()))?;
    let want = checked_row_bytes(ty, src.len())?;
    if dst.len() != want {
        return Err(Error::Input(format!(
            "{ty}: {} elements need {want} bytes of output, got {}",
            src.len(),
            dst.len()
        )));
    }
    if let Some(i) = src.iter().position(|v| !v.is_finite()) {
        return Err(Error::Input(format!(
            "{ty}: cannot quantize non-finite value {} at element {i}",
            src[i]
        )));
    }
    let (bl, bb) = if ty.block_len() == 1 {
        (src.len().max(1), dst.len().max(1))
    } else {
        (ty.block_len(), ty.block_bytes())
    };
    for (x, b) in src.chunks_exact(bl).zip(dst.chunks_exact_mut(bb)) {
        f(x, b);
    }
    Ok(())
}

/// Encodes a tensor of rows of `row_len` elements (rows in parallel).
pub fn quantize_tensor(ty: GgmlType, src: &[f32], row_len: usize) -> Result<Vec<u8>> {
    if row_len == 0 || src.len() % row_len != 0 {
        return Err(Error::Input(format!(
            "{ty}: {} elements are not whole rows of {row_len}",
            src.len()
        )));
    }
    let rb = checked_row_bytes(ty, row_len)?;
    let mut out = vec![0u8; rb * (src.len() / row_len)];
    out.par_chunks_mut(rb)
        .zip(src.par_chunks(row_len))
        .try_for_each(|(dst, row)| quantize_row(ty, row, dst))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_match_type_table() {
        use std::mem::size_of;
        let sizes = [
            (GgmlType::Q4_0, size_of::<BlockQ4_0>()),
            (GgmlType::Q4_1, size_of::<BlockQ4_1>()),
            (GgmlType::Q5_0, size_of::<BlockQ5_0>()),
            (GgmlType::Q5_1, size_of::<BlockQ5_1>()),
            (GgmlType::Q8_0, size_of::<BlockQ8_0>()),
            (GgmlType::Q2K, size_of::<BlockQ2K>()),
            (GgmlType::Q3K, size_of::<BlockQ3K>()),
            (GgmlType::Q4K, size_of::<BlockQ4K>()),
            (GgmlType::Q5K, size_of::<BlockQ5K>()),
            (GgmlType::Q6K, size_of::<BlockQ6K>()),
            (GgmlType::Q8K, size_of::<BlockQ8K>()),
            (GgmlType::IQ4NL, size_of::<BlockIQ4NL>()),
            (GgmlType::IQ4XS, size_of::<BlockIQ4XS>()),
            (GgmlType::MXFP4, size_of::<BlockMXFP4>()),
        ];
        for (ty, size) in sizes {
            assert_eq!(ty.block_bytes(), size, "{ty}");
        }
    }

    #[test]
    fn lengths_are_checked() {
        let mut y = vec![0.0; 32];
        assert!(dequantize_row(GgmlType::Q4_0, &[0; 17], &mut y).is_err());
        assert!(dequantize_row(GgmlType::Q4_0, &[0; 18], &mut y).is_ok());
        assert!(dequantize_row(GgmlType::Q4K, &[0; 144], &mut y).is_err());
        assert!(matches!(
            dequantize_row(GgmlType::IQ2XXS, &[0; 66], &mut vec![0.0; 256]),
            Err(Error::UnsupportedQuant(_))
        ));
        let mut b = vec![0u8; 34];
        assert!(quantize_row(GgmlType::Q8_0, &[f32::NAN; 32], &mut b).is_err());
        assert!(quantize_row(GgmlType::Q8_0, &[0.0; 31], &mut b).is_err());
        assert!(quantize_row(GgmlType::IQ4NL, &[0.0; 32], &mut [0u8; 18]).is_err());
        assert!(quantize_tensor(GgmlType::Q8_0, &[0.0; 96], 64).is_err());
    }

    #[test]
    fn nearest_int_ties_to_even() {
        use k_quantize::nearest_int;
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(-2.6), -3);
        assert_eq!(nearest_int(127.49), 127);
    }
}
