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

/// Every type this layer decodes: its reference dequantizer, and its quantizer if
/// `quantize_row` can produce it.
type Codec = (GgmlType, BlockFn<u8, f32>, Option<BlockFn<f32, u8>>);

const CODECS: &[Codec] = {
    use GgmlType::*;
    &[
        (F32, float::dequantize_f32, Some(float::quantize_f32)),
        (F16, float::dequantize_f16, Some(float::quantize_f16)),
        (BF16, float::dequantize_bf16, Some(float::quantize_bf16)),
        (Q4_0, q4_0::dequantize_q4_0, Some(q4_0::quantize_q4_0)),
        (Q4_1, q4_0::dequantize_q4_1, Some(q4_0::quantize_q4_1)),
        (Q5_0, q4_0::dequantize_q5_0, Some(q4_0::quantize_q5_0)),
        (Q5_1, q4_0::dequantize_q5_1, Some(q4_0::quantize_q5_1)),
        (Q8_0, q4_0::dequantize_q8_0, Some(q4_0::quantize_q8_0)),
        (Q2K, k_quants::dequantize_q2_k, None),
        (Q3K, k_quants::dequantize_q3_k, None),
        (
            Q4K,
            k_quants::dequantize_q4_k,
            Some(k_quantize::quantize_q4_k),
        ),
        (
            Q5K,
            k_quants::dequantize_q5_k,
            Some(k_quantize::quantize_q5_k),
        ),
        (
            Q6K,
            k_quants::dequantize_q6_k,
            Some(k_quantize::quantize_q6_k),
        ),
        (
            Q8K,
            k_quants::dequantize_q8_k,
            Some(k_quantize::quantize_q8_k),
        ),
        (IQ4NL, iq4::dequantize_iq4_nl, None),
        (IQ4XS, iq4::dequantize_iq4_xs, None),
        (MXFP4, mxfp4::dequantize_mxfp4, None),
    ]
};

/// The types of [`CODECS`], in order.
const fn codec_types<const N: usize>() -> [GgmlType; N] {
    let mut out = [GgmlType::F32; N];
    let mut i = 0;
    while i < N {
        out[i] = CODECS[i].0;
        i += 1;
    }
    out
}

/// Types `dequantize_row` accepts.
pub const DEQUANT_TYPES: &[GgmlType] = &codec_types::<{ CODECS.len() }>();

fn codec(ty: GgmlType) -> Option<&'static Codec> {
    CODECS.iter().find(|c| c.0 == ty)
}

fn unsupported(ty: GgmlType) -> Error {
    Error::UnsupportedQuant(ty.name().to_string())
}

/// The lengths (elements, bytes) one call of a block function takes: a block, or for the
/// float types (`block_len` 1) the whole row of `n` elements in `bytes` bytes.
fn piece(ty: GgmlType, n: usize, bytes: usize) -> (usize, usize) {
    if ty.block_len() == 1 {
        (n.max(1), bytes.max(1))
    } else {
        (ty.block_len(), ty.block_bytes())
    }
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

/// Errors unless `bytes` (of the input, or `what` it is) is exactly a row of `n` elements.
fn check_row(ty: GgmlType, n: usize, bytes: usize, what: &str) -> Result<()> {
    let want = checked_row_bytes(ty, n)?;
    if bytes != want {
        return Err(Error::Input(format!(
            "{ty}: {n} elements need {want} bytes{what}, got {bytes}"
        )));
    }
    Ok(())
}

/// Decodes one row: `dst.len()` elements from `src`, which must be exactly that many
/// elements' worth of `ty` blocks.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    let f = codec(ty).ok_or_else(|| unsupported(ty))?.1;
    check_row(ty, dst.len(), src.len(), "")?;
    let (bl, bb) = piece(ty, dst.len(), src.len());
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
    let f = codec(ty).and_then(|c| c.2).ok_or_else(|| unsupported(ty))?;
    check_row(ty, src.len(), dst.len(), " of output")?;
    if let Some(i) = src.iter().position(|v| !v.is_finite()) {
        return Err(Error::Input(format!(
            "{ty}: cannot quantize non-finite value {} at element {i}",
            src[i]
        )));
    }
    let (bl, bb) = piece(ty, src.len(), dst.len());
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
