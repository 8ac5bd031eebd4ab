//! Forward-pass speed on the real Gemma 3 270M Q4_K_M (scripts/fetch-model.sh; skipped when
//! absent): prefill of 128 tokens and single-token decode, on rayon's global pool
//! (`RAYON_NUM_THREADS` sets the thread count; llama-bench's comparison uses 2).
//! Reports tokens/s as criterion throughput (elements = tokens).
//!
//! `LODE_BENCH_LLAMA=REPS cargo bench --bench forward` instead runs llama-bench's two tests
//! (pp128: 128 prompt tokens from an empty cache; tg64: 64 single-token decodes from an empty
//! cache), REPS times each after one warm-up, and prints mean ± stddev tokens/s, so the
//! numbers line up with `llama-bench -p 128 -n 64 -r REPS`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, Criterion, Throughput};
use lode::gguf::Gguf;
use lode::model::{self, Logits, Model, ModelOptions};

fn model_path() -> Option<PathBuf> {
    let p = std::env::var("LODE_GEMMA3_270M")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/lode/models/gemma3-270m-q4_k_m.gguf")
        });
    p.exists().then_some(p)
}

fn prompt() -> Vec<u32> {
    (0..128).map(|i| 1000 + (i * 37) % 5000).collect()
}

fn load() -> Option<Box<dyn Model>> {
    let Some(path) = model_path() else {
        eprintln!("forward bench: Gemma 3 270M not found, skipping");
        return None;
    };
    let g = Arc::new(Gguf::open(path).unwrap());
    Some(
        model::load(
            g,
            &ModelOptions {
                n_ctx: 1024,
                ..Default::default()
            },
        )
        .unwrap(),
    )
}

fn forward(c: &mut Criterion) {
    let Some(mut m) = load() else { return };
    let prompt = prompt();
    let mut group = c.benchmark_group("gemma3-270m-q4_k_m");
    group.sample_size(10);
    group.throughput(Throughput::Elements(128));
    group.bench_function("prefill/128", |b| {
        b.iter(|| {
            m.truncate(0).unwrap();
            m.forward(&prompt, Logits::Last).unwrap()
        })
    });
    group.throughput(Throughput::Elements(1));
    m.truncate(0).unwrap();
    m.forward(&prompt, Logits::Last).unwrap();
    group.bench_function("decode/at-128", |b| {
        b.iter(|| {
            // stay near position 128 so every sample sees the same context
            if m.n_past() > 512 {
                m.truncate(0).unwrap();
                m.forward(&prompt, Logits::Last).unwrap();
            }
            m.forward(&[1234], Logits::Last).unwrap()
        })
    });
    group.finish();
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// llama-bench's pp128 and tg64, `reps` times each after a warm-up.
fn llama_style(reps: usize) {
    let Some(mut m) = load() else { return };
    let prompt = prompt();
    let threads = rayon::current_num_threads();
    let only = std::env::var("LODE_BENCH_ONLY").unwrap_or_default();
    let mut pp = Vec::new();
    for r in (0..=reps).filter(|_| only != "tg") {
        m.truncate(0).unwrap();
        let t = Instant::now();
        m.forward(&prompt, Logits::Last).unwrap();
        if r > 0 {
            pp.push(prompt.len() as f64 / t.elapsed().as_secs_f64());
        }
    }
    let mut tg = Vec::new();
    for r in (0..=reps).filter(|_| only != "pp") {
        m.truncate(0).unwrap();
        let mut tok = 2u32;
        let t = Instant::now();
        for _ in 0..64 {
            let logits = m.forward(&[tok], Logits::Last).unwrap();
            tok = 1000 + (logits.len() as u32 % 7);
        }
        if r > 0 {
            tg.push(64.0 / t.elapsed().as_secs_f64());
        }
    }
    let (pm, ps) = mean_sd(&pp);
    let (tm, ts) = mean_sd(&tg);
    // LODE_BENCH_ONLY=pp|tg runs one test (for profiling); the other prints NaN
    println!(
        "lode  threads={threads}  pp128 {pm:8.2} ± {ps:6.2} t/s   tg64 {tm:8.2} ± {ts:6.2} t/s"
    );
}

criterion_group!(benches, forward);

fn main() {
    match std::env::var("LODE_BENCH_LLAMA") {
        Ok(r) => llama_style(r.parse().unwrap_or(3).max(1)),
        Err(_) => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
