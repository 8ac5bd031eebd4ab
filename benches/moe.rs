//! One Gemma 4 26B-A4B MoE block (router + 8 routed experts + the dense branch) on one token,
//! the unit decode repeats 30 times per token: criterion throughput is GB/s of weights read,
//! to hold against the machine's streaming-read bandwidth (`cargo bench --bench kernels --
//! bandwidth`). The weights are a one-layer synthetic 26B-A4B file (`lode synth --layers 1`,
//! Q4_K_M mix, ~1.3 GB; written once to target/bench-data/); every iteration feeds a new random
//! residual, so the router picks other experts and they stream from memory, as in decode.
//! Threads: rayon's global pool (`RAYON_NUM_THREADS`, default all cores).

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lode::gguf::Gguf;
use lode::model::gemma4::Gemma4;
use lode::model::ModelOptions;
use lode::ops::Precision;
use lode::synth::weights::{Routing, SynthOptions};
use lode::synth::{synthesize, Preset};

fn model_file() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    let path = dir.join("gemma4-26b-a4b-1layer.gguf");
    if !path.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        eprintln!("moe bench: writing {} (once)", path.display());
        let opts = SynthOptions {
            routing: Routing::Uniform,
            seed: 1,
        };
        synthesize(Preset::Gemma4_26bA4b, Some(1), &path, opts, None).unwrap();
    }
    path
}

fn bench_moe(c: &mut Criterion) {
    let g = Arc::new(Gguf::open(model_file()).unwrap());
    let opts = ModelOptions {
        n_ctx: 64,
        ..Default::default()
    };
    let mut m = Gemma4::load(g, &opts, Precision::Kernels).unwrap();
    let d = m.config().base.n_embd;
    let mut rng = lode::sample::Rng::new(7);
    let mut x = vec![0f32; d];
    let mut fill = |x: &mut [f32]| {
        for v in x.iter_mut() {
            *v = (rng.next_f64() as f32 - 0.5) * 4.0;
        }
    };
    fill(&mut x);
    let bytes = m.ffn_block(0, &mut x).unwrap();
    let mut g = c.benchmark_group("moe_block");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("26b_a4b/q4_k_m/1_token", |b| {
        b.iter(|| {
            fill(&mut x);
            m.ffn_block(0, &mut x).unwrap()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench_moe
}
criterion_main!(benches);
