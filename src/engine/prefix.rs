//! KV prefix reuse: remember which tokens a model's KV cache holds, and before the next prompt
//! rewind the cache to the longest prefix the prompt shares with it, so only the new tail is
//! evaluated. Used by the batch engine (one per sequence slot) and by `lode chat` (one per
//! session).
//!
//! The cache holds `prompt ++ generated` up to `n_past` (the last sampled token is never fed
//! back). The next turn's rendered history usually re-tokenizes the previous answer the same
//! way, but not always (a template trims text, a merge differs at a boundary): comparing token
//! ids, not text, makes that case a shorter reuse instead of a wrong one.

use crate::model::Model;

/// The tokens in a model's KV cache, position by position.
#[derive(Debug, Default, Clone)]
pub struct KvPrefix {
    tokens: Vec<u32>,
}

impl KvPrefix {
    pub fn new() -> Self {
        KvPrefix::default()
    }

    /// The cached tokens.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Rewinds `model` to the longest common prefix of its cache and `prompt`, keeping at least
    /// one prompt token to evaluate (generation needs the logits of the last one). Returns how
    /// many leading prompt tokens are already cached. A sliding-window cache that cannot rewind
    /// that far is cleared instead (reuse 0).
    pub fn prepare(&mut self, model: &mut dyn Model, prompt: &[u32]) -> usize {
        // Trust our record only while it matches the model (a failed call may have moved it).
        if self.tokens.len() != model.n_past() {
            self.clear(model);
        }
        let common = self
            .tokens
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count();
        let keep = common.min(prompt.len().saturating_sub(1));
        if keep < self.tokens.len() {
            // a sliding-window ring rewinds directly, or from a checkpoint the session took at
            // the end of an earlier prompt (then a few tokens more are recomputed), or to 0
            let got = model.rewind(keep);
            self.tokens.truncate(got);
            return got;
        }
        self.tokens.truncate(keep);
        keep
    }

    /// Records what the cache holds after generating: the first `n_past` of
    /// `prompt ++ generated`, where `prompt` is the whole prompt passed to `prepare`.
    pub fn record(&mut self, model: &dyn Model, prompt: &[u32], generated: &[u32]) {
        let n = model.n_past();
        self.tokens.clear();
        self.tokens
            .extend(prompt.iter().chain(generated).copied().take(n));
        if self.tokens.len() != n {
            // More positions than we know tokens for: nothing to trust.
            self.tokens.clear();
        }
    }

    /// Forgets everything, rewinding the model to position 0.
    pub fn clear(&mut self, model: &mut dyn Model) {
        self.tokens.clear();
        // truncate(0) always succeeds (documented by Model::truncate).
        let _ = model.truncate(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Logits;
    use crate::Result;

    /// Counts positions; refuses to rewind below `floor` (a sliding-window ring).
    struct Fake {
        n_past: usize,
        floor: usize,
    }

    impl Fake {
        fn with_floor(floor: usize) -> Fake {
            Fake { n_past: 0, floor }
        }
    }

    impl Model for Fake {
        fn arch(&self) -> &str {
            "fake"
        }
        fn n_vocab(&self) -> usize {
            100
        }
        fn n_ctx(&self) -> usize {
            100
        }
        fn n_ctx_train(&self) -> usize {
            100
        }
        fn n_past(&self) -> usize {
            self.n_past
        }
        fn forward(&mut self, tokens: &[u32], _: Logits) -> Result<Vec<f32>> {
            self.n_past += tokens.len();
            Ok(vec![0.0; 100])
        }
        fn truncate(&mut self, n_past: usize) -> Result<()> {
            if n_past != 0 && n_past < self.floor {
                return Err(crate::Error::Input("ring".into()));
            }
            self.n_past = n_past;
            Ok(())
        }
    }

    #[test]
    fn reuses_the_common_prefix() {
        let mut m = Fake::with_floor(0);
        let mut p = KvPrefix::new();
        let prompt = [1, 2, 3, 4];
        assert_eq!(p.prepare(&mut m, &prompt), 0);
        m.forward(&prompt, Logits::Last).unwrap();
        m.forward(&[5, 6], Logits::Last).unwrap(); // generated 5, 6, 7 (7 never fed)
        p.record(&m, &prompt, &[5, 6, 7]);
        assert_eq!(p.tokens(), [1, 2, 3, 4, 5, 6]);

        // The next turn re-renders 5 as 9: reuse stops there.
        assert_eq!(p.prepare(&mut m, &[1, 2, 3, 4, 9, 8]), 4);
        assert_eq!(m.n_past, 4);
        // The same prompt again: everything but the last token is reused.
        m.n_past = 4;
        assert_eq!(p.prepare(&mut m, &[1, 2, 3, 4]), 3);
        assert_eq!(m.n_past, 3);
    }

    #[test]
    fn falls_back_to_zero_when_the_ring_cannot_rewind() {
        let mut m = Fake::with_floor(5);
        let mut p = KvPrefix::new();
        let prompt = [1, 2, 3, 4, 5, 6];
        p.prepare(&mut m, &prompt);
        m.forward(&prompt, Logits::Last).unwrap();
        p.record(&m, &prompt, &[7]);
        assert_eq!(p.prepare(&mut m, &[1, 2, 3, 8]), 0);
        assert_eq!((m.n_past, p.tokens().len()), (0, 0));
        // A record that disagrees with the model is dropped.
        m.n_past = 2;
        assert_eq!(p.prepare(&mut m, &[1, 2, 3]), 0);
        assert_eq!(m.n_past, 0);
    }
}
