//! Element-wise activations and small vector helpers, all in f32.

use half::slice::HalfFloatSliceExt;

use super::pool::Pool;
use super::{ggml, Precision};

/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (HF `gelu_pytorch_tanh`) in f32, written
/// as `x·σ(2y)` (the same function: `(1 + tanh y)/2 = σ(2y)`) on [`exp_nonpos`], so a loop of
/// it vectorizes where libm's `tanhf` was a call per value, and the negative tail has no
/// `1 + tanh` cancellation: within 4e-7·max(1, 2|y|) relative of the function in f64 (the
/// 2|y| is y's own f32 rounding, magnified; test below). ggml's float16 lookup table costs
/// up to 1.5e-2 in the logits of the tiny oracle ([`geglu_inplace`]'s `ggml_table`).
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    let y = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
    let t = exp_nonpos(-2.0 * y.abs());
    // σ(2y) = 1/(1 + e^−2y) for y ≥ 0, e^2y/(1 + e^2y) below: both from t = e^−2|y| ≤ 1
    let s = if y >= 0.0 {
        1.0 / (1.0 + t)
    } else {
        t / (1.0 + t)
    };
    x * s
}

/// `tanh y` in f32 with plain arithmetic, so a loop of it vectorizes: the Taylor series to
/// `y¹⁷` below |y| = 1/2 (its next term is 4e-10 relative there), `(1 − t)/(1 + t)` with
/// `t = e^−2|y|` ([`exp_nonpos`]) above; within 4e-7 relative of `tanh` in f64 (test below).
/// NaN stays NaN.
#[inline(always)]
pub fn tanh(y: f32) -> f32 {
    // tanh y = y + Σ c_k y^(2k+1): −1/3, 2/15, −17/315, 62/2835, −1382/155925, …
    const C: [f32; 8] = [
        -1.0 / 3.0,
        2.0 / 15.0,
        -17.0 / 315.0,
        62.0 / 2835.0,
        -1382.0 / 155_925.0,
        21_844.0 / 6_081_075.0,
        -929_569.0 / 638_512_875.0,
        6_404_582.0 / 10_854_718_875.0,
    ];
    let a = y.abs();
    let a2 = a * a;
    let poly = C.iter().rev().fold(0.0, |p, &c| p * a2 + c);
    let series = a + a * a2 * poly;
    let t = exp_nonpos(-2.0 * a);
    let r = if a < 0.5 {
        series
    } else {
        (1.0 - t) / (1.0 + t)
    };
    if y.is_nan() {
        y
    } else {
        r.copysign(y)
    }
}

/// `e^x` for `x ≤ 0`: Cody–Waite reduction and ggml's degree-5 polynomial (`ggml_v_expf`) with
/// plain multiplies and adds, so the loop vectorizes on any target; ≤ 2 ulp from `expf`.
/// Below −87 (where `expf` turns subnormal) it gives 0, so `e^−∞` is 0; NaN gives `e^−87`.
#[inline(always)]
pub fn exp_nonpos(x: f32) -> f32 {
    if x < -87.0 {
        return 0.0;
    }
    let c = f32::from_bits;
    let x = x.max(-87.0);
    let z = x * c(0x3fb8_aa3b) + c(0x4b40_0000); // x·log2 e + 1.5·2^23
    let n = z - c(0x4b40_0000);
    let b = (x - n * c(0x3f31_7200)) - n * c(0x35bf_be8e);
    let u = b * b;
    let j = ((c(0x3c07_2010) * b + c(0x3d2b_9f17)) * u + (c(0x3e2a_af33) * b + c(0x3eff_fedb))) * u
        + (c(0x3f7f_fff6) * b + 1.0);
    // 2^n from z's low mantissa bits (n + 127 ≥ 1 for x ≥ −87)
    let e = (z.to_bits().wrapping_sub(0x4b40_0000).wrapping_add(127)) << 23;
    j * f32::from_bits(e)
}

/// The largest `f(x)` (−∞ for none; NaN is passed over), in 16 running maxima over
/// `chunks_exact(16)`, so there is no one chain of dependent compares: the softmax rows of the
/// sampler (262,144 entries on Gemma) and of the vision encoder.
pub fn max_lanes<T>(xs: &[T], f: impl Fn(&T) -> f32) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut it = xs.chunks_exact(16);
    for ch in &mut it {
        for (l, x) in lanes.iter_mut().zip(ch) {
            *l = l.max(f(x));
        }
    }
    let rest = it
        .remainder()
        .iter()
        .map(&f)
        .fold(f32::NEG_INFINITY, f32::max);
    lanes.into_iter().fold(rest, f32::max)
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
        geglu(gate, up);
    }
}

/// `gate ← gelu_tanh(gate) ⊙ up` on the calling thread, in f32 ([`gelu_tanh`]; vectorizes).
pub fn geglu(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g = gelu_tanh(*g) * u;
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

/// `x ← cap · tanh(x / cap)` (Gemma's final logit softcap), on [`tanh`]: a vocabulary's row
/// is 262,144 values on Gemma 4 (libm's `tanhf` took 1.3 ms of a decode token on two threads,
/// by a throwaway timer). Element-wise, so a long row is split across the thread pool (the
/// same bits).
pub fn softcap(x: &mut [f32], cap: f32) {
    let one = |x: &mut [f32]| {
        for v in x.iter_mut() {
            *v = cap * tanh(*v / cap);
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

    /// GELU in f64, the function [`gelu_tanh`] computes (as `x·σ(2y)`: `1 + tanh y` would
    /// cancel in f64 too, below x ≈ −6).
    fn gelu_f64(x: f64) -> f64 {
        let y = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
        x / (1.0 + (-2.0 * y).exp())
    }

    /// Every 61st f32 in ±[1e-30, 40] (and zero): `gelu_tanh` within 4e-7·max(1, 2|y|)
    /// relative of GELU in f64 down to results of 1e-30 (the 2|y| is the f32 rounding of
    /// y = √(2/π)(x + 0.044715x³) magnified in e^2y, up to ~1e-5 near x = −9; below 1e-30,
    /// near x = −10, e^2y under e^−87 is flushed to 0: off by under 1e-36 absolute),
    /// and, by that measure, never worse than the textbook f32 form on libm's `tanhf` it
    /// replaced (which loses the negative tail to the cancellation in `1 + tanh`).
    #[test]
    fn gelu_tanh_is_gelu_to_f32_rounding() {
        const SQRT_2_OVER_PI: f32 = 0.797_884_6;
        let libm = |x: f32| 0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).tanh());
        let (mut worst_new, mut worst_old) = (0f64, 0f64);
        for bits in ((1e-30f32).to_bits()..=(40f32).to_bits()).step_by(61) {
            for x in [f32::from_bits(bits), -f32::from_bits(bits)] {
                let want = gelu_f64(x as f64);
                let got = gelu_tanh(x) as f64;
                if want.abs() >= 1e-30 {
                    let x = x as f64;
                    let y = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
                    let scale = want.abs() * (2.0 * y.abs()).max(1.0);
                    worst_new = worst_new.max((got - want).abs() / scale);
                    worst_old = worst_old.max((libm(x as f32) as f64 - want).abs() / scale);
                }
            }
        }
        assert!(worst_new < 4e-7, "relative error {worst_new:e}");
        assert!(
            worst_new <= worst_old,
            "{worst_new:e} against {worst_old:e}"
        );
        assert_eq!(gelu_tanh(0.0), 0.0);
        assert_eq!(gelu_tanh(-100.0), 0.0);
        assert_eq!(gelu_tanh(100.0), 100.0);
        assert!(gelu_tanh(f32::NAN).is_nan());
    }

    /// Every 37th f32 in ±[1e-30, 20] and the branch edge: `tanh` within 4e-7 relative of
    /// `tanh` in f64; saturates to ±1, keeps NaN.
    #[test]
    fn tanh_is_tanh_to_f32_rounding() {
        let mut worst = 0f64;
        let edge = [0.5f32.next_down(), 0.5, 0.5f32.next_up()];
        let grid = ((1e-30f32).to_bits()..=(20f32).to_bits()).step_by(37);
        for y in grid.map(f32::from_bits).chain(edge) {
            for y in [y, -y] {
                let want = (y as f64).tanh();
                worst = worst.max((tanh(y) as f64 - want).abs() / want.abs());
            }
        }
        assert!(worst < 4e-7, "relative error {worst:e}");
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(30.0), 1.0);
        assert_eq!(tanh(-1e30), -1.0);
        assert!(tanh(f32::NAN).is_nan());
    }

    #[test]
    fn exp_nonpos_matches_f64_exp() {
        // every 997th f32 in [−87, −0], against e^x in f64
        let mut worst = 0f64;
        for bits in (0x8000_0000u32..=(-87f32).to_bits()).step_by(997) {
            let x = f32::from_bits(bits);
            let want = (x as f64).exp();
            worst = worst.max((exp_nonpos(x) as f64 - want).abs() / want);
        }
        assert!(worst < 3e-7, "relative error {worst}");
        assert_eq!(exp_nonpos(0.0), 1.0);
        assert_eq!(exp_nonpos(-87.5), 0.0);
        assert_eq!(exp_nonpos(f32::NEG_INFINITY), 0.0);
        assert!(exp_nonpos(-87.0) > 0.0 && exp_nonpos(-87.0) < 2e-38);
    }

    #[test]
    fn max_lanes_is_the_max() {
        for n in [0usize, 1, 15, 16, 17, 37] {
            let xs: Vec<f32> = (0..n).map(|i| ((i * 7919) % 23) as f32 - 11.0).collect();
            let want = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max_lanes(&xs, |&x| x), want, "n = {n}");
        }
        assert_eq!(max_lanes(&[f32::NAN, -1.0], |&x| x), -1.0);
    }

    #[test]
    fn softcap_caps() {
        let mut x = [0.0, 3.0, -45.0, 1e6];
        softcap(&mut x, 30.0);
        for (got, v) in x.iter().zip([0.0f64, 3.0, -45.0, 1e6]) {
            let want = 30.0 * (v / 30.0).tanh();
            assert!(
                (*got as f64 - want).abs() <= 4e-7 * want.abs(),
                "{v}: {got}"
            );
        }
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
