//! Log-probabilities of the model's own distribution: `log_softmax` of the raw logits, before
//! penalties, truncation and temperature. This is what OpenAI's `logprobs` report and vLLM's
//! default (`raw_logprobs`); it does not depend on the sampling settings of the request.

/// The chosen token's log-probability and the `n` most likely tokens with theirs.
#[derive(Clone, Debug, PartialEq)]
pub struct Logprobs {
    pub token: u32,
    pub logprob: f32,
    /// Most likely first; equal logits by ascending id.
    pub top: Vec<(u32, f32)>,
}

/// `log_softmax(logits)[token]` and the `n` largest entries (`logits` indexed by token id).
/// Sums in f64 after subtracting the maximum, so a 262k vocabulary loses nothing.
pub fn logprobs(logits: &[f32], token: u32, n: usize) -> Logprobs {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    let lse = max as f64 + sum.ln();
    let lp = |l: f32| (l as f64 - lse) as f32;
    // the n best in one pass: a small list kept sorted (n is at most 20 in the API)
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(n + 1);
    if n > 0 {
        for (i, &l) in logits.iter().enumerate() {
            if top.len() == n && l <= top[n - 1].1 {
                continue;
            }
            let at = top.partition_point(|&(_, b)| b >= l);
            top.insert(at, (i as u32, l));
            top.truncate(n);
        }
    }
    Logprobs {
        token,
        logprob: logits
            .get(token as usize)
            .map_or(f32::NEG_INFINITY, |&l| lp(l)),
        top: top.into_iter().map(|(id, l)| (id, lp(l))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_direct_log_softmax() {
        let logits = [1.0f32, 3.0, 3.0, -2.0, 0.5];
        let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
        let want = |i: usize| ((logits[i] as f64).exp() / z).ln() as f32;
        let r = logprobs(&logits, 4, 3);
        assert!((r.logprob - want(4)).abs() < 1e-6);
        // ties keep the lower id first
        let ids: Vec<u32> = r.top.iter().map(|t| t.0).collect();
        assert_eq!(ids, [1, 2, 0]);
        for &(id, l) in &r.top {
            assert!((l - want(id as usize)).abs() < 1e-6);
        }
        assert!(logprobs(&logits, 0, 0).top.is_empty());
        // probabilities of the whole row sum to one
        let all = logprobs(&logits, 0, logits.len());
        let total: f64 = all.top.iter().map(|t| (t.1 as f64).exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }

    #[test]
    fn huge_logits_do_not_overflow() {
        let mut logits = vec![0.0f32; 262_144];
        logits[7] = 1000.0;
        let r = logprobs(&logits, 7, 1);
        assert!(r.logprob.abs() < 1e-6 && r.top == [(7, r.logprob)]);
        assert!(logprobs(&logits, 8, 0).logprob < -999.0);
    }
}
