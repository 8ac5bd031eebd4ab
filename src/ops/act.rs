//! Element-wise activations and small vector helpers, all in f32.

use half::slice::HalfFloatSliceExt;

use super::pool::Pool;
use super::{ggml, Precision};

/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (HF `gelu_pytorch_tanh`), computed exactly in
/// f32: ggml's float16 lookup table costs up to 1.5e-2 in the logits of the tiny oracle.
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).tanh())
}

/// ggml's GELU of one value (the tests' reference for [`geglu_inplace`]'s slices).
#[cfg(test)]
fn gelu_tanh_f16_table(x: f32) -> f32 {
    gelu_table_entry(gelu_table(), x, half::f16::from_f32(x))
}

/// ggml's GELU table, indexed by `f16(x)` (inputs outside ±10 pass through or
/// vanish), so both the argument and the result are rounded to f16 (`ggml_vec_gelu_f32` with
/// `GGML_GELU_FP16`). The entries are ggml's own `ggml_gelu_f32` ([`ggml::gelu_f32`]), equal
/// to the table in libggml-cpu for all 65,536 inputs. Only for parity with llama.cpp.
fn gelu_table() -> &'static [f32] {
    static TABLE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| {
                let h = half::f16::from_bits(bits).to_f32();
                half::f16::from_f32(ggml::gelu_f32(h)).to_f32()
            })
            .collect()
    })
}

/// ggml's GELU of `x` from [`gelu_table`], given `h = f16(x)`.
#[inline]
fn gelu_table_entry(table: &[f32], x: f32, h: half::f16) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        table[h.to_bits() as usize]
    }
}

/// Values below which [`geglu_inplace`] runs on the calling thread.
const PAR_MIN: usize = 1 << 14;

/// GeGLU middle: `gate ← gelu_tanh(gate) ⊙ up`; `ggml_table` picks ggml's [`gelu_table`].
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
        // f16(x) a slice at a time (F16C where the CPU has it) instead of one call per value,
        // the same rounding (`perf record` of a 26B-A4B decode: 0.48 % → 0.26 % of samples)
        let table = gelu_table();
        let mut h = [half::f16::ZERO; 256];
        for (g, u) in gate.chunks_mut(h.len()).zip(up.chunks(h.len())) {
            let h = &mut h[..g.len()];
            h.convert_from_f32_slice(g);
            for ((g, &u), &h) in g.iter_mut().zip(u).zip(h.iter()) {
                *g = gelu_table_entry(table, *g, h) * u;
            }
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

/// `x ← cap · tanh(x / cap)` (Gemma's final logit softcap). Element-wise, so a vocabulary's
/// row (262,144 `tanh` on Gemma 4: 1.3 ms of a decode token on two threads, by a throwaway
/// timer) is split across the thread pool (the same bits).
pub fn softcap(x: &mut [f32], cap: f32) {
    let one = |x: &mut [f32]| {
        for v in x.iter_mut() {
            *v = cap * (*v / cap).tanh();
        }
    };
    if x.len() >= PAR_MIN && rayon::current_num_threads() > 1 {
        const CHUNK: usize = 8192;
        Pool::current().for_chunks(x, CHUNK, |_, x| one(x));
    } else {
        one(x);
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

    /// The slice-at-a-time f16 rounding of `geglu_inplace` gives what one value at a time does,
    /// ties (the midpoints between neighbouring f16 values) and the ±10 cut-offs included.
    #[test]
    fn geglu_table_equals_value_at_a_time() {
        let mut xs: Vec<f32> = (-12_000..=12_000).map(|i| i as f32 * 1e-3).collect();
        for bits in (0u16..0x7c00).step_by(7) {
            for sign in [1.0f32, -1.0] {
                let (a, b) = (half::f16::from_bits(bits), half::f16::from_bits(bits + 1));
                xs.push(sign * (a.to_f32() + b.to_f32()) / 2.0);
            }
        }
        xs.extend([10.0, -10.0, 9.995, -9.995, 1e-8, -1e-8, 0.0, -0.0]);
        let up: Vec<f32> = (0..xs.len()).map(|i| 0.5 + (i % 7) as f32).collect();
        let mut g = xs.clone();
        geglu_inplace(&mut g, &up, true);
        for ((&x, &u), &y) in xs.iter().zip(&up).zip(&g) {
            let want = gelu_tanh_f16_table(x) * u;
            assert_eq!(y.to_bits(), want.to_bits(), "x = {x:e}: {y} vs {want}");
        }
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
