//! Forward-pass speed on the real Gemma 3 270M Q4_K_M (scripts/fetch-model.sh; skipped when
//! absent): prefill of 128 tokens and single-token decode, on rayon's global pool
//! (`RAYON_NUM_THREADS` sets the thread count; llama-bench's comparison uses 2).
//! Reports tokens/s as criterion throughput (elements = tokens).

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lode::gguf::Gguf;
use lode::model::{self, Logits, ModelOptions};

fn model_path() -> Option<PathBuf> {
    let p = std::env::var("LODE_GEMMA3_270M")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/lode/models/gemma3-270m-q4_k_m.gguf")
        });
    p.exists().then_some(p)
}

fn forward(c: &mut Criterion) {
    let Some(path) = model_path() else {
        eprintln!("forward bench: Gemma 3 270M not found, skipping");
        return;
    };
    let g = Arc::new(Gguf::open(path).unwrap());
    let mut m = model::load(
        g,
        &ModelOptions {
            n_ctx: 1024,
            ..Default::default()
        },
    )
    .unwrap();
    let prompt: Vec<u32> = (0..128).map(|i| 1000 + (i * 37) % 5000).collect();

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

criterion_group!(benches, forward);
criterion_main!(benches);
