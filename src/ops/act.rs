//! Element-wise activations and small vector helpers, all in f32.

use super::pool::Pool;
use super::{ggml, Precision};

/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (HF `gelu_pytorch_tanh`), computed exactly in
/// f32: ggml's float16 lookup table costs up to 1.5e-2 in the logits of the tiny oracle.
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).tanh())
}

/// ggml's GELU: a float16 table indexed by `f16(x)` (inputs outside ±10 pass through or
/// vanish), so both the argument and the result are rounded to f16 (`ggml_vec_gelu_f32` with
/// `GGML_GELU_FP16`). The entries are ggml's own `ggml_gelu_f32` ([`ggml::gelu_f32`]), equal
/// to the table in libggml-cpu for all 65,536 inputs. Only for parity with llama.cpp.
#[inline]
pub fn gelu_tanh_f16_table(x: f32) -> f32 {
    static TABLE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        let table = TABLE.get_or_init(|| {
            (0..=u16::MAX)
                .map(|bits| {
                    let h = half::f16::from_bits(bits).to_f32();
                    half::f16::from_f32(ggml::gelu_f32(h)).to_f32()
                })
                .collect()
        });
        table[half::f16::from_f32(x).to_bits() as usize]
    }
}

/// Values below which [`geglu_inplace`] runs on the calling thread.
const PAR_MIN: usize = 1 << 14;

/// GeGLU middle: `gate ← gelu_tanh(gate) ⊙ up`; `ggml_table` picks [`gelu_tanh_f16_table`].
/// Element-wise, so long inputs are split across the thread pool (the same bits).
pub fn geglu_inplace(gate: &mut [f32], up: &[f32], ggml_table: bool) {
    if gate.len().min(up.len()) >= PAR_MIN && rayon::current_num_threads() > 1 {
        const CHUNK: usize = 4096;
        let n = gate.len().min(up.len());
        Pool::current().for_chunks(&mut gate[..n], CHUNK, |i, g| {
            geglu_serial(g, &up[i * CHUNK..], ggml_table)
        });
    } else {
        geglu_serial(gate, up, ggml_table);
    }
}

fn geglu_serial(gate: &mut [f32], up: &[f32], ggml_table: bool) {
    if ggml_table {
        for (g, u) in gate.iter_mut().zip(up) {
            *g = gelu_tanh_f16_table(*g) * u;
        }
    } else {
        for (g, u) in gate.iter_mut().zip(up) {
            *g = gelu_tanh(*g) * u;
        }
    }
}

/// In-place softmax. Exact: `exp` and an f64 sum, so long rows stay exact to f32 rounding;
/// Kernels: ggml's `soft_max` op ([`ggml::soft_max`]).
pub fn softmax(x: &mut [f32], p: Precision) {
    if p == Precision::Kernels {
        let n = x.len();
        return ggml::soft_max(x, 0, n);
    }
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `x ← cap · tanh(x / cap)` (Gemma's final logit softcap).
pub fn softcap(x: &mut [f32], cap: f32) {
    for v in x.iter_mut() {
        *v = cap * (*v / cap).tanh();
    }
}

pub fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

pub fn scale(x: &mut [f32], s: f32) {
    for v in x.iter_mut() {
        *v *= s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_values() {
        // torch.nn.functional.gelu(x, approximate="tanh") in float64
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-6);
        assert!((gelu_tanh(-2.0) - -0.045_402_3).abs() < 1e-6);
        assert_eq!(gelu_tanh(0.0), 0.0);
    }

    #[test]
    fn softmax_sums_to_one() {
        for p in [Precision::Exact, Precision::Kernels] {
            let mut x = [1.0, 2.0, 3.0, -1e30];
            softmax(&mut x, p);
            assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            assert_eq!(x[3], 0.0);
        }
    }
}
