//! Several sequences in one forward pass (continuous batching). Each sequence has its own KV
//! cache and positions; the matrix products of a batch run over the rows of all its sequences at
//! once (one read of the weights per step, MoE experts grouped over every routed token), and
//! attention runs per sequence against that sequence's cache.
//!
//! [`Layout`] is the per-batch context the layers read: which rows belong to which sequence,
//! each row's position, which rows give logits. Shared by both Gemma models.

use std::ops::Range;

use super::kv_cache::KvCache;
use super::{check_input, EmbdSpan, Logits};
use crate::{Error, Result};

/// One sequence's part of a [`super::Model::forward_batch`] call.
#[derive(Clone, Copy, Debug)]
pub struct SeqInput<'a> {
    /// Sequence slot, `0..n_seq`.
    pub seq: usize,
    /// Tokens at positions `n_past(seq)..`; at most one internal batch of the model
    /// ([`super::N_UBATCH`], or the reserved image size when `spans` hold an image).
    pub tokens: &'a [u32],
    /// Positions given as embeddings (image soft tokens), relative to `tokens`.
    pub spans: &'a [EmbdSpan<'a>],
    /// Which rows come back; `None` for a prompt chunk that only fills the cache.
    pub logits: Option<Logits>,
}

/// The rows of one sequence in a batch.
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    pub seq: usize,
    /// Rows of the batch (contiguous).
    pub rows: Range<usize>,
    /// Position of the first row (the sequence's `n_past` before the batch).
    pub p0: usize,
    /// Positions that attend to each other both ways (image soft tokens), absolute.
    pub bidi: Vec<Range<usize>>,
}

/// Where each row of one internal batch comes from; built once per batch, read by every layer.
#[derive(Debug, Default)]
pub(crate) struct Layout<'a> {
    /// Every row's token, sequences one after the other.
    pub tokens: Vec<u32>,
    /// Every row's position in its own sequence.
    pub pos: Vec<usize>,
    /// One segment per input, in input order.
    pub segs: Vec<Segment>,
    /// Rows whose logits are wanted, ascending.
    pub outputs: Vec<usize>,
    /// Rows given as embeddings (row, `[len × n_embd]`), unscaled.
    pub embd: Vec<(usize, &'a [f32])>,
}

impl<'a> Layout<'a> {
    /// Checks every input against the caches (slot in range and used once, token ids, room in
    /// the context, chunk size) and lays the rows out. Nothing is written on error.
    pub fn new(
        inputs: &[SeqInput<'a>],
        caches: &[KvCache],
        n_vocab: usize,
        max_chunk: usize,
    ) -> Result<Layout<'a>> {
        let mut lay = Layout::default();
        for (i, inp) in inputs.iter().enumerate() {
            let cache = caches.get(inp.seq).ok_or_else(|| {
                Error::Input(format!(
                    "sequence {} does not exist (the model has {} slots)",
                    inp.seq,
                    caches.len()
                ))
            })?;
            if inputs[..i].iter().any(|o| o.seq == inp.seq) {
                return Err(Error::Input(format!(
                    "sequence {} appears twice in one batch",
                    inp.seq
                )));
            }
            check_input(inp.tokens, n_vocab, cache.n_past(), cache.n_ctx())?;
            if inp.tokens.len() > max_chunk {
                return Err(Error::Input(format!(
                    "{} tokens of sequence {} in one batch; at most {max_chunk}",
                    inp.tokens.len(),
                    inp.seq
                )));
            }
            let r0 = lay.tokens.len();
            let p0 = cache.n_past();
            lay.tokens.extend_from_slice(inp.tokens);
            lay.pos.extend(p0..p0 + inp.tokens.len());
            let rows = r0..lay.tokens.len();
            match inp.logits {
                Some(Logits::All) => lay.outputs.extend(rows.clone()),
                Some(Logits::Last) => lay.outputs.push(rows.end - 1),
                None => {}
            }
            let mut bidi = Vec::new();
            for sp in inp.spans {
                lay.embd.push((r0 + sp.start, sp.embd));
                if sp.bidirectional {
                    bidi.push(p0 + sp.start..p0 + sp.start + sp.len);
                }
            }
            lay.segs.push(Segment {
                seq: inp.seq,
                rows,
                p0,
                bidi,
            });
        }
        if lay.tokens.is_empty() {
            return Err(Error::Input("forward_batch: no tokens".into()));
        }
        Ok(lay)
    }

    /// Rows in the batch.
    pub fn n(&self) -> usize {
        self.tokens.len()
    }

    /// The slice of `buf` (`[n × width]`) holding each segment's rows, in segment order.
    pub fn split_rows<'b>(&self, buf: &'b mut [f32], width: usize) -> Vec<&'b mut [f32]> {
        let mut out = Vec::with_capacity(self.segs.len());
        let mut rest = &mut buf[..self.n() * width];
        for seg in &self.segs {
            let (a, b) = rest.split_at_mut(seg.rows.len() * width);
            out.push(a);
            rest = b;
        }
        out
    }

    /// Marks every segment's positions as filled in its cache.
    pub fn advance(&self, caches: &mut [KvCache]) {
        for seg in &self.segs {
            caches[seg.seq].advance(seg.rows.len());
        }
    }

    /// Forgets whatever a failed batch may have written (each cache back to its `p0`).
    pub fn roll_back(&self, caches: &mut [KvCache]) {
        for seg in &self.segs {
            let _ = caches[seg.seq].truncate(seg.p0);
        }
    }
}

/// Where the chunk of a prompt that starts at `t0` ends: at most `max` tokens (of `n`), never
/// cutting a span: it ends before a span that would not fit, or takes the whole span when it
/// starts at one (a span's positions attend to each other, so they go in one batch).
pub fn chunk_end(t0: usize, n: usize, max: usize, spans: &[Range<usize>]) -> usize {
    let mut t1 = (t0 + max).min(n);
    for r in spans {
        if r.start < t1 && r.end > t1 {
            t1 = if r.start > t0 { r.start } else { r.end };
        }
    }
    t1
}

/// A single-sequence call on the selected slot (`Model::forward_embd`) as one
/// `forward_batch` per internal batch of at most [`super::N_UBATCH`] tokens (never cutting a
/// span); a failure forgets the whole call, not only the failed batch.
pub(crate) fn forward_chunked<M: super::Model + ?Sized>(
    m: &mut M,
    seq: usize,
    tokens: &[u32],
    spans: &[EmbdSpan],
    logits: Logits,
) -> Result<Vec<f32>> {
    let start = m.n_past();
    check_input(tokens, m.n_vocab(), start, m.n_ctx())?;
    let ranges: Vec<Range<usize>> = spans.iter().map(|s| s.start..s.start + s.len).collect();
    let mut out = Vec::new();
    let mut t0 = 0;
    while t0 < tokens.len() {
        let t1 = chunk_end(t0, tokens.len(), super::N_UBATCH, &ranges);
        let chunk_spans: Vec<EmbdSpan> = spans
            .iter()
            .filter(|sp| sp.start >= t0 && sp.start < t1)
            .map(|sp| EmbdSpan {
                start: sp.start - t0,
                ..*sp
            })
            .collect();
        let want = match logits {
            Logits::All => Some(Logits::All),
            Logits::Last if t1 == tokens.len() => Some(Logits::Last),
            Logits::Last => None,
        };
        let input = SeqInput {
            seq,
            tokens: &tokens[t0..t1],
            spans: &chunk_spans,
            logits: want,
        };
        match m.forward_batch(&[input]) {
            // one chunk (every decode step): its rows are the answer, not copied
            Ok(rows) if out.is_empty() => out = rows,
            Ok(rows) => out.extend_from_slice(&rows),
            Err(e) => {
                let _ = m.truncate(start);
                return Err(e);
            }
        }
        t0 = t1;
    }
    Ok(out)
}

/// One cache per slot, all alike.
pub(crate) fn new_caches(
    specs: &[super::kv_cache::LayerSpec],
    ty: super::KvType,
    n_ctx: usize,
    n_ubatch: usize,
    n_seq: usize,
) -> Result<Vec<KvCache>> {
    (0..n_seq.max(1))
        .map(|_| KvCache::new(specs, ty, n_ctx, n_ubatch))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::kv_cache::{KvType, LayerSpec};
    use super::*;

    #[test]
    fn chunks_never_cut_a_span() {
        assert_eq!(chunk_end(0, 10, 4, &[]), 4);
        assert_eq!(chunk_end(8, 10, 4, &[]), 10);
        // a span across the boundary: end before it, or take it whole when it starts here
        let span = std::slice::from_ref(&(2..7));
        assert_eq!(chunk_end(0, 20, 4, span), 2);
        assert_eq!(chunk_end(2, 20, 4, span), 7);
        assert_eq!(chunk_end(0, 20, 8, span), 8);
    }

    #[test]
    fn layout_of_two_sequences() {
        let specs = [LayerSpec {
            n_kv_head: 1,
            head_dim: 32,
            window: None,
            k_from_v: None,
        }];
        let mut caches = new_caches(&specs, KvType::F16, 64, 16, 3).unwrap();
        caches[1].advance(5);
        let inputs = [
            SeqInput {
                seq: 1,
                tokens: &[7],
                spans: &[],
                logits: Some(Logits::Last),
            },
            SeqInput {
                seq: 2,
                tokens: &[1, 2, 3],
                spans: &[],
                logits: None,
            },
            SeqInput {
                seq: 0,
                tokens: &[4, 5],
                spans: &[],
                logits: Some(Logits::All),
            },
        ];
        let lay = Layout::new(&inputs, &caches, 10, 16).unwrap();
        assert_eq!(lay.tokens, [7, 1, 2, 3, 4, 5]);
        assert_eq!(lay.pos, [5, 0, 1, 2, 0, 1]);
        assert_eq!(lay.outputs, [0, 4, 5]);
        assert_eq!(lay.segs[1].rows, 1..4);
        let mut buf = vec![0.0; 12];
        let parts = lay.split_rows(&mut buf, 2);
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [2, 6, 4]);
        lay.advance(&mut caches);
        assert_eq!(
            caches.iter().map(|c| c.n_past()).collect::<Vec<_>>(),
            [2, 6, 3]
        );

        let twice = [inputs[0], inputs[0]];
        assert!(Layout::new(&twice, &caches, 10, 16).is_err());
        let bad = [SeqInput {
            seq: 3,
            ..inputs[0]
        }];
        assert!(Layout::new(&bad, &caches, 10, 16).is_err());
        let long = [SeqInput {
            tokens: &[1; 17],
            ..inputs[1]
        }];
        assert!(Layout::new(&long, &caches, 10, 16).is_err());
    }
}
