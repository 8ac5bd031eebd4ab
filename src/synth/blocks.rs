//! Random but valid quantized blocks, written directly as bytes: chosen scales, uniformly
//! random quants. This is what makes `lode synth` fast: the 26B-A4B file holds ~25 B weights,
//! and running the K-quant scale search over that many random floats would take hours, while
//! filling quant bits from a counter-based RNG runs at memory speed.
//!
//! Every generator is centred (dequantized mean ≈ 0) and hits a requested RMS:
//! - `Q8_0`, `Q5_0`, `Q4_0`: `y = d·(q − zero)` with all quant bits random; the uniform quants
//!   have mean −½ (e.g. Q8_0 spans −128…127), so the sign of `d` is random per block.
//! - `Q4_K`, `Q5_K`: `y = d·sc·q − dmin·m`; with `m = sc` and `dmin = d·(qmax/2)` every
//!   sub-block is centred exactly up to the f16 rounding of `dmin`.
//! - `Q6_K`: `y = d·sc·(q − 32)`; the sign of each int8 sub-block scale is random.
//!
//! Block scales vary (per-block magnitude factor, per-sub-block 6-/8-bit scales) so that the
//! kernels see realistic, non-constant scales. The RMS targets use the exact second moments
//! of those distributions (comments below), so a tensor's std is on target to sampling error.

use crate::gguf::GgmlType;
use crate::quant::float::f16_bits;
use crate::quant::k_quantize::pack_scales_k4;
use crate::{Error, Result};

/// SplitMix64: tiny, fast, and good enough for weights. Streams are split by hashing
/// (seed, tensor name, chunk index), so output does not depend on thread scheduling.
#[derive(Clone, Debug)]
pub struct Rng(u64);

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(mix(seed ^ 0x9e37_79b9_7f4a_7c15))
    }

    /// An independent stream for (`seed`, `name`, `index`).
    pub fn stream(seed: u64, name: &str, index: u64) -> Rng {
        // FNV-1a over the name, then mixed with the seed and index.
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Rng::new(mix(seed ^ mix(h)) ^ mix(index.wrapping_add(0x632b_e59b_d9b4_e019)))
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let v = self.next_u64().to_le_bytes();
            let n = rest.len();
            rest.copy_from_slice(&v[..n]);
        }
    }

    /// Uniform in [0, 1).
    #[inline]
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform integer in `lo..=hi`.
    #[inline]
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        let span = (hi - lo + 1) as u64;
        lo + (((self.next_u64() >> 32) * span) >> 32) as u32
    }

    #[inline]
    pub fn sign(&mut self) -> f32 {
        if self.next_u64() >> 63 == 0 {
            1.0
        } else {
            -1.0
        }
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
        let u2 = (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
}

/// Per-block magnitude factor, uniform in [0.75, 1.25]: E[f²] = 1 + 1/48.
fn block_factor(rng: &mut Rng) -> f32 {
    0.75 + 0.5 * rng.uniform()
}
const E_F2: f32 = 1.0 + 1.0 / 48.0;

/// E[(q − 128)²] for q uniform on 0..=255 (Q8_0's int8 quants): (256² − 1)/12 + ¼.
const E_Q8: f32 = 5461.5;
/// E[(q − 16)²], q uniform on 0..=31 (Q5_0).
const E_Q5_0: f32 = 85.5;
/// E[(q − 8)²], q uniform on 0..=15 (Q4_0).
const E_Q4_0: f32 = 21.5;
/// Var(q), q uniform on 0..=15 (Q4_K; centred by the min): (16² − 1)/12.
const V_Q4K: f32 = 21.25;
/// Var(q), q uniform on 0..=31 (Q5_K).
const V_Q5K: f32 = 85.25;
/// E[sc²] for sc uniform on 32..=63 (6-bit K-quant sub-block scales).
const E_SC6: f32 = 2341.5;
/// E[(q − 32)²], q uniform on 0..=63 (Q6_K).
const E_Q6K: f32 = 341.5;
/// E[sc²] for |sc| uniform on 64..=127 (Q6_K int8 sub-block scales).
const E_SC8: f32 = 9461.5;

fn put_f16(b: &mut [u8], x: f32) {
    b[..2].copy_from_slice(&f16_bits(x).to_le_bytes());
}

/// Types `centred_blocks` writes directly.
pub const DIRECT_TYPES: &[GgmlType] = &[
    GgmlType::Q4_0,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
];

/// Fills `out` (a whole number of `ty` blocks) with centred random blocks of RMS `rms`.
pub fn centred_blocks(ty: GgmlType, rms: f32, rng: &mut Rng, out: &mut [u8]) -> Result<()> {
    if !DIRECT_TYPES.contains(&ty) {
        return Err(Error::UnsupportedQuant(format!(
            "synth: no direct block generator for {ty}"
        )));
    }
    let bb = ty.block_bytes();
    if out.len() % bb != 0 {
        return Err(Error::Input(format!(
            "synth: {} bytes is not a whole number of {ty} blocks",
            out.len()
        )));
    }
    rng.fill(out); // every quant bit random; headers are overwritten below
    for b in out.chunks_exact_mut(bb) {
        let f = block_factor(rng);
        match ty {
            GgmlType::Q8_0 => put_f16(b, rng.sign() * f * rms / (E_Q8 * E_F2).sqrt()),
            GgmlType::Q5_0 => put_f16(b, rng.sign() * f * rms / (E_Q5_0 * E_F2).sqrt()),
            GgmlType::Q4_0 => put_f16(b, rng.sign() * f * rms / (E_Q4_0 * E_F2).sqrt()),
            GgmlType::Q4K | GgmlType::Q5K => {
                let (var_q, half_range) = if ty == GgmlType::Q4K {
                    (V_Q4K, 7.5)
                } else {
                    (V_Q5K, 15.5)
                };
                let d = rng.sign() * f * rms / (var_q * E_SC6 * E_F2).sqrt();
                put_f16(b, d);
                put_f16(&mut b[2..], d * half_range);
                let mut sc = [0u8; 8];
                for s in &mut sc {
                    *s = rng.range(32, 63) as u8;
                }
                pack_scales_k4(&sc, &sc, &mut b[4..16]);
            }
            GgmlType::Q6K => {
                let d = f * rms / (E_Q6K * E_SC8 * E_F2).sqrt();
                for s in &mut b[192..208] {
                    let v = rng.range(64, 127) as i32 * if rng.sign() > 0.0 { 1 } else { -1 };
                    *s = v as i8 as u8;
                }
                put_f16(&mut b[208..], d);
            }
            _ => unreachable!("checked against DIRECT_TYPES"),
        }
    }
    Ok(())
}

/// Sets quant `q` (0..=63) of element `i` (0..256) of a Q6_K block (layout of
/// `dequantize_q6_k`: halves of 128, four groups of 32 sharing `ql`/`qh` bytes).
pub fn set_q6k_quant(b: &mut [u8], i: usize, q: u8) {
    let (n, idx) = (i / 128, i % 128);
    let (g, l) = (idx / 32, idx % 32);
    let ql = &mut b[64 * n..64 * n + 64];
    let (lo_byte, hi_nibble) = match g {
        0 => (l, false),
        1 => (l + 32, false),
        2 => (l, true),
        _ => (l + 32, true),
    };
    if hi_nibble {
        ql[lo_byte] = (ql[lo_byte] & 0x0f) | ((q & 0x0f) << 4);
    } else {
        ql[lo_byte] = (ql[lo_byte] & 0xf0) | (q & 0x0f);
    }
    let qh = &mut b[128 + 32 * n + l];
    let shift = 2 * g;
    *qh = (*qh & !(3 << shift)) | (((q >> 4) & 3) << shift);
}

/// Q6_K block scale bits for `d` and sub-block `k`'s int8 scale.
pub fn set_q6k_scales(b: &mut [u8], d: f32, scales: &[i8; 16]) {
    for (dst, &s) in b[192..208].iter_mut().zip(scales) {
        *dst = s as u8;
    }
    put_f16(&mut b[208..], d);
}

/// The RMS a Q6_K sub-block gets from int8 scale `sc` and block scale `d` with random quants.
pub fn q6k_sub_rms(d: f32, sc: f32) -> f32 {
    (d * sc).abs() * E_Q6K.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::dequantize_row;

    fn stats(x: &[f32]) -> (f64, f64) {
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn centred_blocks_hit_the_requested_std() {
        for &ty in DIRECT_TYPES {
            let n = 256 * 512;
            let mut bytes = vec![0u8; ty.row_bytes(n as u64).unwrap() as usize];
            let mut rng = Rng::stream(7, ty.name(), 0);
            centred_blocks(ty, 0.02, &mut rng, &mut bytes).unwrap();
            let mut y = vec![0.0f32; n];
            dequantize_row(ty, &bytes, &mut y).unwrap();
            let (mean, std) = stats(&y);
            assert!(mean.abs() < 0.02 * 0.01, "{ty}: mean {mean}");
            assert!((std / 0.02 - 1.0).abs() < 0.015, "{ty}: std {std}");
        }
    }

    #[test]
    fn q6k_quant_setter_matches_dequantizer() {
        let mut b = vec![0u8; 210];
        let mut scales = [0i8; 16];
        for (k, s) in scales.iter_mut().enumerate() {
            *s = k as i8 + 1;
        }
        set_q6k_scales(&mut b, 1.0, &scales);
        for i in 0..256 {
            set_q6k_quant(&mut b, i, (i % 64) as u8);
        }
        let mut y = vec![0.0f32; 256];
        dequantize_row(GgmlType::Q6K, &b, &mut y).unwrap();
        for (i, v) in y.iter().enumerate() {
            let want = (i / 16 + 1) as f32 * ((i % 64) as f32 - 32.0);
            assert_eq!(*v, want, "element {i}");
        }
    }

    #[test]
    fn streams_are_independent_and_reproducible() {
        let a = Rng::stream(1, "blk.0.attn_q.weight", 3).next_u64();
        assert_eq!(a, Rng::stream(1, "blk.0.attn_q.weight", 3).next_u64());
        assert_ne!(a, Rng::stream(1, "blk.0.attn_q.weight", 4).next_u64());
        assert_ne!(a, Rng::stream(2, "blk.0.attn_q.weight", 3).next_u64());
        assert_ne!(a, Rng::stream(1, "blk.1.attn_q.weight", 3).next_u64());
    }
}
