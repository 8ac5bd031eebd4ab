//! Expert paging must not change a single bit of the output: the tiny Gemma 4 MoE fixture
//! (tests/fixtures/gemma4-tiny) run with `--paging mmap` and with the expert cache at budgets
//! from "every expert" down to "less than one layer's top-k" (every token evicts), with and
//! without router look-ahead. The kernels are the same, so the logits must be identical.

use std::path::PathBuf;
use std::sync::Arc;

use lode::gguf::Gguf;
use lode::model::{self, Logits, ModelOptions};
use lode::paging::index::ExpertIndex;
use lode::paging::pager::read_trace;
use lode::paging::{Budget, PagingMode, PagingOptions, PagingStats};

fn tiny(q: &str) -> Arc<Gguf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
        "tests/fixtures/gemma4-tiny/gguf/gemma4-tiny-public-{q}.gguf"
    ));
    Arc::new(Gguf::open(p).unwrap())
}

const PROMPT: [u32; 9] = [2, 18, 77, 301, 45, 9, 400, 123, 7];
const N_DECODE: usize = 12;

/// The model in `g` with a 64-token context and `paging`.
fn load(g: Arc<Gguf>, paging: PagingOptions) -> lode::Result<Box<dyn model::Model>> {
    let opts = ModelOptions {
        n_ctx: 64,
        paging,
        ..Default::default()
    };
    model::load(g, &opts)
}

/// Prompt logits (every position), then greedy decoding: every logit row produced, and the
/// paging counters at the end.
fn run(g: &Arc<Gguf>, paging: PagingOptions) -> (Vec<f32>, Vec<u32>, PagingStats) {
    let mut m = load(g.clone(), paging).unwrap();
    let mut all = m.forward(&PROMPT, Logits::All).unwrap();
    let n_vocab = m.n_vocab();
    let mut out = Vec::new();
    let mut last = all[all.len() - n_vocab..].to_vec();
    for _ in 0..N_DECODE {
        let next = last
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0 as u32;
        out.push(next);
        last = m.forward(&[next], Logits::Last).unwrap();
        all.extend_from_slice(&last);
    }
    let stats = m.paging_stats().expect("a MoE model has paging stats");
    (all, out, stats)
}

fn cache(budget: u64, prefetch: bool) -> PagingOptions {
    PagingOptions {
        mode: PagingMode::Cache,
        budget: Budget::Bytes(budget),
        prefetch,
        ..PagingOptions::default()
    }
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn logits_identical_across_paging_modes_and_budgets() {
    for q in ["q4_k_m", "q8_0", "f32"] {
        check_identical(q, &tiny(q));
    }
}

/// The same on a synthetic model (`lode synth --preset gemma4-tiny --routing zipf:1`): the
/// synth writer's Q4_K_M type mix and skewed routing.
#[test]
fn synthetic_logits_identical_across_paging_modes_and_budgets() {
    use lode::synth::{synthesize, weights::SynthOptions, Preset};
    let path = std::env::temp_dir().join(format!("lode-paging-synth-{}.gguf", std::process::id()));
    let opts = SynthOptions {
        routing: "zipf:1".parse().unwrap(),
        seed: 7,
    };
    synthesize(Preset::Gemma4Tiny, None, &path, opts, None).unwrap();
    let g = Arc::new(Gguf::open(&path).unwrap());
    check_identical("synth", &g);
    drop(g);
    std::fs::remove_file(&path).unwrap();
}

fn check_identical(q: &str, g: &Arc<Gguf>) {
    {
        let g = g.clone();
        let index = ExpertIndex::new(g.clone(), 5).unwrap();
        let total = index.total_bytes();
        let one = index.expert_bytes(0);
        assert!(total > 0 && one > 0);
        let (want, want_tokens, mmap_stats) = run(&g, PagingOptions::default());
        assert_eq!(mmap_stats.mode, "mmap");
        assert_eq!(mmap_stats.tokens as usize, PROMPT.len() + N_DECODE);
        // top-2 of 8 experts in 5 layers: at least 2 distinct experts per layer per token.
        assert!(mmap_stats.experts_routed >= 5 * 2 * (1 + N_DECODE as u64));
        // all experts, half, a layer's top-k (2), one expert (< top-k), nothing
        for budget in [total, total / 2, 2 * one, one, 0] {
            for prefetch in [false, true] {
                let (got, tokens, s) = run(&g, cache(budget, prefetch));
                assert_eq!(
                    tokens, want_tokens,
                    "{q} budget {budget} prefetch {prefetch}"
                );
                assert!(
                    same_bits(&got, &want),
                    "{q}: logits differ with budget {budget} (prefetch {prefetch})"
                );
                assert_eq!(s.mode, "cache");
                assert_eq!(s.budget_bytes, budget);
                assert_eq!(s.hits + s.misses, s.experts_routed, "{s:?}");
                if budget < 2 * one {
                    // every layer evicts the previous layer's experts
                    assert!(s.evictions > 0, "{s:?}");
                    assert!(s.bytes_read >= s.misses * one, "{s:?}");
                    // Without prefetch at most one of a layer's two experts can still be
                    // resident when the layer asks for them. With prefetch, the look-ahead
                    // thread may load one just before it is asked for (a hit), so how many
                    // are misses depends on timing; only the read bytes bound holds.
                    if !prefetch {
                        assert!(s.misses >= s.experts_routed / 2, "{s:?}");
                    }
                }
                if prefetch {
                    assert!(s.prefetch_predicted > 0, "{s:?}");
                    assert!(s.prefetch_correct <= s.prefetch_predicted);
                } else {
                    assert_eq!(s.prefetch_predicted, 0);
                }
                assert!(s.resident_bytes <= total);
            }
        }
    }
}

/// A 2 MB model's experts fit anywhere: `auto` reads all of them into the arena at load.
#[test]
fn auto_paging_on_a_small_model_caches_every_expert() {
    let g = tiny("q4_k_m");
    let total = ExpertIndex::new(g.clone(), 5).unwrap().total_bytes();
    let opts = PagingOptions {
        mode: PagingMode::Auto,
        ..PagingOptions::default()
    };
    let m = load(g, opts).unwrap();
    let s = m.paging_stats().unwrap();
    assert_eq!((s.mode.as_str(), s.budget_bytes), ("cache", total));
    assert_eq!(s.resident_bytes, total, "{s:?}");
    let c = m.paging_choice();
    assert!(c.contains("auto → cache") && c.contains("fit"), "{c}");
}

#[test]
fn trace_has_every_token_and_layer() {
    let g = tiny("q4_k_m");
    let path = std::env::temp_dir().join(format!("lode-trace-{}.jsonl", std::process::id()));
    let opts = PagingOptions {
        trace: Some(path.clone()),
        ..cache(0, false)
    };
    let (_, _, s) = run(&g, opts);
    // The model was dropped inside `run`: the trace is complete and renamed into place.
    let text = std::fs::read_to_string(&path).unwrap();
    let n_tokens = PROMPT.len() + N_DECODE;
    assert_eq!(text.lines().count(), n_tokens * 5);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let experts = v["experts"].as_array().unwrap();
        let weights = v["weights"].as_array().unwrap();
        assert_eq!(experts.len(), 2);
        assert_eq!(weights.len(), 2);
        assert!(experts.iter().all(|e| e.as_u64().unwrap() < 8));
        assert_ne!(experts[0], experts[1]);
        assert!(v["layer"].as_u64().unwrap() < 5);
        assert!((v["token"].as_u64().unwrap() as usize) < n_tokens);
    }
    let (steps, n_keys) = read_trace(&path).unwrap();
    assert_eq!(steps.len(), n_tokens);
    assert_eq!(n_keys, 5 * 8);
    assert!(steps.iter().all(|s| s.len() == 10));
    // Replaying with room for nothing misses every access; with room for all, only first uses.
    let sim = lode::paging::simulate(&steps, n_keys, 0, lode::paging::PolicyKind::Lru, 2);
    assert_eq!(sim.misses as usize, n_tokens * 10);
    let sim = lode::paging::simulate(&steps, n_keys, n_keys, lode::paging::PolicyKind::Lru, 2);
    let distinct: std::collections::HashSet<usize> = steps.iter().flatten().copied().collect();
    assert_eq!(sim.misses as usize, distinct.len());
    assert!(s.misses as usize >= distinct.len());
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn bad_paging_options_are_errors() {
    assert!("disk".parse::<PagingMode>().is_err());
    assert!("6 parsecs".parse::<Budget>().is_err());
    assert_eq!("auto".parse::<Budget>().unwrap(), Budget::Auto);
    assert_eq!("1GiB".parse::<Budget>().unwrap(), Budget::Bytes(1 << 30));
    let g = tiny("q4_k_m");
    let opts = PagingOptions {
        trace: Some(PathBuf::from("/nonexistent-dir/trace.jsonl")),
        ..PagingOptions::default()
    };
    let r = load(g, opts);
    assert!(r.is_err());
}

/// `g` written as a split model of `parts` files in a fresh directory (tensor i in file
/// i mod parts, so one expert's gate/up and down sit in different files), as llama.cpp's
/// gguf-split names and marks them (`split.no`, `split.count` u16, `split.tensors.count` i32).
fn write_split(g: &Gguf, parts: usize, tag: &str) -> (PathBuf, PathBuf) {
    use lode::gguf::{GgufWriter, Metadata, TensorDesc, Value};
    let dir = std::env::temp_dir().join(format!("lode-split-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let name = |k: usize| dir.join(format!("tiny-{:05}-of-{parts:05}.gguf", k + 1));
    for k in 0..parts {
        let mut md = if k == 0 {
            g.metadata().clone()
        } else {
            Metadata::default()
        };
        md.insert("split.no".into(), Value::U16(k as u16));
        md.insert("split.count".into(), Value::U16(parts as u16));
        md.insert(
            "split.tensors.count".into(),
            Value::I32(g.tensors().len() as i32),
        );
        let mine: Vec<_> = g.tensors().iter().skip(k).step_by(parts).collect();
        let descs: Vec<TensorDesc> = mine
            .iter()
            .map(|t| TensorDesc::new(t.name.clone(), t.ty, &t.dims).unwrap())
            .collect();
        let mut w = GgufWriter::create(name(k), &md, &descs, g.alignment()).unwrap();
        for t in mine {
            w.write_tensor(&t.name, g.tensor_data(t)).unwrap();
        }
        w.finish().unwrap();
    }
    (name(0), dir)
}

/// A split model is the same model: the same bits under the mapping, the expert cache at
/// every budget (reads from several files) and `auto`, which caches it when every expert fits.
#[test]
fn split_model_gives_the_single_files_logits_in_every_paging_mode() {
    let g = tiny("q4_k_m");
    let (first, dir) = write_split(&g, 3, "q4_k_m");
    let s = Arc::new(Gguf::open(&first).unwrap());
    assert_eq!(s.files().len(), 3);
    assert_eq!(s.tensors().len(), g.tensors().len());
    let index = ExpertIndex::new(s.clone(), 5).unwrap();
    let (total, one) = (index.total_bytes(), index.expert_bytes(0));
    // some expert's ranges span two files
    let spans = (0..index.n_layer()).any(|il| {
        (0..index.n_expert(il)).any(|e| {
            let r = index.ranges(il, e).unwrap();
            r.iter().any(|x| x.file != r[0].file)
        })
    });
    assert!(spans, "the split should put an expert in two files");
    let (want, want_tokens, _) = run(&g, PagingOptions::default());
    let (got, tokens, st) = run(&s, PagingOptions::default());
    assert_eq!(st.mode, "mmap");
    assert!(same_bits(&got, &want) && tokens == want_tokens);
    for budget in [total, one] {
        let (got, tokens, st) = run(&s, cache(budget, false));
        assert_eq!((st.mode.as_str(), st.budget_bytes), ("cache", budget));
        // every expert came through the cache's reads (all of them at load for the full budget)
        assert!(st.bytes_read >= budget, "{st:?}");
        assert!(
            same_bits(&got, &want) && tokens == want_tokens,
            "split, cache budget {budget}: logits differ"
        );
    }
    let auto = PagingOptions {
        mode: PagingMode::Auto,
        ..PagingOptions::default()
    };
    let m = load(s.clone(), auto.clone()).unwrap();
    let st = m.paging_stats().unwrap();
    assert_eq!((st.mode.as_str(), st.resident_bytes), ("cache", total));
    drop(m);
    let (got, _, _) = run(&s, auto);
    assert!(same_bits(&got, &want));
    drop(s);
    std::fs::remove_dir_all(dir).unwrap();
}
