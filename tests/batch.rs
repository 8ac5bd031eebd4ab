//! Continuous batching (issue #13): several sequences in one forward pass give exactly what
//! each gives alone — logits bit for bit on the tiny Gemma 4 MoE fixtures, tokens and
//! log-probabilities on the real Gemma 3 270M (Q4_K_M: 9 sequences put 9 rows through every
//! K-quant product, where llama.cpp's arithmetic would change from 8 rows on) — and sequences
//! join and leave between steps.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::tiny::{argmax, tiny};
use lode::engine::batch::{Batcher, Event, SeqId, SeqParams};
use lode::engine::StopReason;
use lode::gguf::Gguf;
use lode::model::{self, Logits, ModelOptions, SeqInput};
use lode::sample::SamplerConfig;
use lode::tokenizer::Tokenizer;

fn opts(n_seq: usize, n_ctx: usize) -> ModelOptions {
    ModelOptions {
        n_ctx,
        n_seq,
        batch_invariant: true,
        ..ModelOptions::default()
    }
}

/// Deterministic prompts of different lengths over a vocabulary of `n_vocab`.
/// `tokens` for sequence `seq`, with the logits of its last position back.
fn last(seq: usize, tokens: &[u32]) -> SeqInput<'_> {
    SeqInput {
        seq,
        tokens,
        spans: &[],
        logits: Some(Logits::Last),
    }
}

fn prompts(n: usize, n_vocab: u32) -> Vec<Vec<u32>> {
    (0..n)
        .map(|i| {
            let len = 3 + (i * 17) % 41;
            (0..len as u32)
                .map(|j| 2 + (j * 31 + i as u32 * 7) % (n_vocab - 2))
                .collect()
        })
        .collect()
}

fn rows(out: &[f32], n_vocab: usize) -> Vec<Vec<f32>> {
    out.chunks(n_vocab).map(<[f32]>::to_vec).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn tiny_gemma4_batched_logits_equal_single() {
    const STEPS: usize = 6;
    for q in ["q8_0", "q4_k_m"] {
        let g = tiny(q);
        let n_vocab = model::load(g.clone(), &opts(1, 256)).unwrap().n_vocab();
        let ps = prompts(3, n_vocab as u32);
        // each alone: the prompt, then greedy decode steps
        let want: Vec<Vec<Vec<f32>>> = ps
            .iter()
            .map(|p| {
                let mut m = model::load(g.clone(), &opts(1, 256)).unwrap();
                let mut row = m.forward(p, Logits::Last).unwrap();
                let mut all = vec![row.clone()];
                for _ in 0..STEPS {
                    row = m.forward(&[argmax(&row) as u32], Logits::Last).unwrap();
                    all.push(row.clone());
                }
                all
            })
            .collect();
        // together: three prompts of different lengths in one pass, then three rows per step
        let mut m = model::load(g.clone(), &opts(3, 256)).unwrap();
        assert_eq!(m.n_seq(), 3);
        let inputs: Vec<SeqInput> = ps.iter().enumerate().map(|(i, p)| last(i, p)).collect();
        let mut got = rows(&m.forward_batch(&inputs).unwrap(), n_vocab);
        for step in 0..=STEPS {
            for ((i, row), want) in got.iter().enumerate().zip(&want) {
                assert_eq!(
                    bits(row),
                    bits(&want[step]),
                    "{q}: sequence {i}, step {step}: batched logits differ from single"
                );
            }
            if step == STEPS {
                break;
            }
            let next: Vec<[u32; 1]> = got.iter().map(|r| [argmax(r) as u32]).collect();
            let inputs: Vec<SeqInput> = next.iter().enumerate().map(|(i, t)| last(i, t)).collect();
            got = rows(&m.forward_batch(&inputs).unwrap(), n_vocab);
        }
        for (i, p) in ps.iter().enumerate() {
            m.select_seq(i).unwrap();
            assert_eq!(m.n_past(), p.len() + STEPS, "{q}: sequence {i} positions");
        }
    }
}

#[test]
fn a_bad_input_leaves_every_sequence_as_it_was() {
    let g = tiny("q8_0");
    let mut m = model::load(g, &opts(2, 64)).unwrap();
    m.forward_batch(&[last(0, &[2, 5, 6]), last(1, &[2, 9])])
        .unwrap();
    for bad in [
        vec![last(0, &[7]), last(1, &[100_000])], // token id out of range
        vec![last(0, &[7]), last(0, &[8])],       // a sequence twice
        vec![last(0, &[7]), last(2, &[8])],       // no such slot
    ] {
        assert!(m.forward_batch(&bad).is_err());
        for (seq, n) in [(0, 3), (1, 2)] {
            m.select_seq(seq).unwrap();
            assert_eq!(m.n_past(), n);
        }
    }
    assert!(m.select_seq(2).is_err());
}

/// A job's tokens, log-probabilities (as bits) and stop reason.
type Outcome<S> = (Vec<u32>, Vec<Vec<u32>>, S);

/// Runs `jobs` through a batcher: `(admit at step, params)`; returns each job's outcome, in
/// job order.
fn run(b: &mut Batcher, jobs: &[(usize, SeqParams)]) -> Vec<Outcome<StopReason>> {
    let mut ids: HashMap<SeqId, usize> = HashMap::new();
    let mut out: Vec<Outcome<Option<StopReason>>> =
        jobs.iter().map(|_| (vec![], vec![], None)).collect();
    let mut step = 0;
    while out.iter().any(|o| o.2.is_none()) {
        for (j, (at, p)) in jobs.iter().enumerate() {
            if *at == step {
                ids.insert(b.admit(p.clone()).unwrap(), j);
            }
        }
        for ev in b.step() {
            match ev {
                Event::Token {
                    id,
                    token,
                    logprobs,
                } => {
                    let o = &mut out[ids[&id]];
                    o.0.push(token);
                    let lp = logprobs.unwrap();
                    let mut b = vec![lp.logprob.to_bits()];
                    b.extend(lp.top.iter().flat_map(|t| [t.0, t.1.to_bits()]));
                    o.1.push(b);
                }
                Event::Done { id, stop, .. } => out[ids[&id]].2 = Some(stop),
                Event::Failed { error, .. } => panic!("{error}"),
            }
        }
        step += 1;
        assert!(step < 10_000, "the batcher never finished");
    }
    out.into_iter()
        .map(|(t, l, s)| (t, l, s.unwrap()))
        .collect()
}

#[test]
fn gemma3_270m_batched_tokens_equal_single() {
    let g = Arc::new(Gguf::open(common::gemma3_270m_path()).unwrap());
    let tok = Arc::new(Tokenizer::from_gguf(g.metadata()).unwrap());
    let texts = [
        "The capital of France is",
        "Q: What is 12 * 7?\nA:",
        "Once upon a time, in a land far away, there lived a",
        "def fibonacci(n):",
        "The three primary colours are",
        "Translate to German: Good morning, my friend.",
        "List the planets of the solar system:",
        "In 1969, the first humans",
        "A haiku about the sea:\n",
    ];
    // greedy for most, seeded sampling for three: the same seed gives the same tokens batched
    let jobs: Vec<(usize, SeqParams)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let sampler = if i % 3 == 2 {
                SamplerConfig {
                    seed: 1000 + i as u64,
                    ..SamplerConfig::default()
                }
            } else {
                SamplerConfig::greedy()
            };
            // sequences join at different steps and stop at different lengths
            let at = if i < 5 { 0 } else { 3 + i };
            (
                at,
                SeqParams {
                    prompt: tok.encode(t, true, false),
                    spans: vec![],
                    max_tokens: 12 + 2 * i,
                    ignore_eos: false,
                    sampler,
                    logprobs: Some(3),
                },
            )
        })
        .collect();
    let batcher = |n_seq: usize| {
        let m = model::load(g.clone(), &opts(n_seq, 512)).unwrap();
        Batcher::new(m, tok.clone(), 64, 512)
    };
    let mut together = batcher(texts.len());
    let got = run(&mut together, &jobs);
    for (i, job) in jobs.iter().enumerate() {
        let alone = run(&mut batcher(1), &[(0, job.1.clone())]);
        assert_eq!(
            got[i].0,
            alone[0].0,
            "job {i} ({:?}): batched tokens {:?} vs alone {:?}",
            texts[i],
            tok.decode(&got[i].0, false),
            tok.decode(&alone[0].0, false)
        );
        assert_eq!(got[i].1, alone[0].1, "job {i}: log-probabilities differ");
        assert_eq!(got[i].2, alone[0].2, "job {i}: stop reason");
    }
    // the batch was really mixed: most jobs ran past the first admissions
    assert!(
        got.iter().filter(|o| o.0.len() >= 8).count() >= 5,
        "{got:?}"
    );
}
