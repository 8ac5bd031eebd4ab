//! Long context: the f16 / q8_0 KV cache against the transformers logits of the tiny Gemma 4's
//! long sequences (2,048 and 4,096 tokens, window 8), the tiled attention against a plain
//! full-matrix attention at 8,192 tokens, sliding layers reading only their window, memory
//! growing by the KV formula only, and the 26B-A4B KV bytes of docs/gemma4.md §4.

mod common;

use common::cli::inspect_json;
use common::tiny::{argmax, diff, fixture, manifest, tiny, tokens};

use lode::model::gemma4::Gemma4;
use lode::model::{self, KvType, Logits, Model, ModelOptions, Precision};
use lode::npy;
use lode::ops::flash::{self, F32Rows as Rows, Flash, KvBlocks};

fn opts(kv_type: KvType, n_ctx: usize) -> ModelOptions {
    ModelOptions {
        n_ctx,
        kv_type,
        ..ModelOptions::default()
    }
}

/// Runs both long sequences (prefill in 512-token forward calls, like llama.cpp's ubatch)
/// and returns, per sequence, (max, mean) vs transformers' last 128 rows and the argmax
/// agreement over those rows.
fn long_vs_transformers(kv: KvType) -> Vec<(f32, f32, usize)> {
    let m = manifest();
    let g = tiny("f32");
    let mut out = Vec::new();
    for s in m["long_sequences"]["sequences"].as_array().unwrap() {
        let i = s["index"].as_u64().unwrap();
        let toks = tokens(&s["tokens"]);
        let first = s["last128_first_position"].as_u64().unwrap() as usize;
        let mut model = model::load_with(g.clone(), &opts(kv, 0), Precision::Exact).unwrap();
        let nv = model.n_vocab();
        let mut got = Vec::new();
        for (c, chunk) in toks.chunks(512).enumerate() {
            let rows = model.forward(chunk, Logits::All).unwrap();
            let at = c * 512;
            // keep only the rows from `first` on
            for (r, row) in rows.chunks(nv).enumerate() {
                if at + r >= first {
                    got.extend_from_slice(row);
                }
            }
        }
        let want =
            npy::read_f32(fixture(&format!("gemma4-tiny/ref/hf_long_logits_l{i}.npy"))).unwrap();
        let (max, mean) = diff(&got, &want.data);
        let agree = (0..128)
            .filter(|&r| {
                argmax(&got[r * nv..(r + 1) * nv]) == argmax(&want.data[r * nv..(r + 1) * nv])
            })
            .count();
        eprintln!(
            "{kv} KV, long l{i} ({} tokens) last 128: max {max:.3e} mean {mean:.3e}, argmax {agree}/128",
            toks.len()
        );
        out.push((max, mean, agree));
    }
    out
}

/// f16 K/V against `hf_long_logits`: within the manifest's tolerance for the f32 GGUF
/// (`suggested_tolerances.f32_gguf_vs_hf_long_logits.ggml_style_fp16_gelu_table`, max 0.085 /
/// mean 0.0056), or, where that is tighter than llama.cpp's own f16-K/V run on the same file
/// (`llamacpp.runs["f32/default"]`, `--kv f16`: l1 max 0.089 / mean 0.0072), within that run's
/// gap; argmax equal on all 128 rows. Measured: l0 0.029 / 0.0023, l1 0.086 / 0.0069.
#[test]
fn f16_kv_long_sequences_match_transformers() {
    let m = manifest();
    let long = &m["long_sequences"];
    let tol =
        &long["suggested_tolerances"]["f32_gguf_vs_hf_long_logits"]["ggml_style_fp16_gelu_table"];
    let llama_f16 = &long["llamacpp"]["runs"]["f32/default"];
    assert!(llama_f16["options"].as_str().unwrap().contains("--kv f16"));
    for (i, (max, mean, agree)) in long_vs_transformers(KvType::F16).into_iter().enumerate() {
        let l = &llama_f16["sequences"][i]["vs_hf_f32"]["last128"];
        let bound = |k: &str| (tol[k].as_f64().unwrap() as f32).max(l[k].as_f64().unwrap() as f32);
        assert!(
            max <= bound("max_abs") && mean <= bound("mean_abs"),
            "f16 l{i}: max {max} mean {mean} (bounds {} / {})",
            bound("max_abs"),
            bound("mean_abs")
        );
        assert_eq!(agree, 128, "f16 l{i}");
    }
}

/// q8_0 K/V (8-bit keys and values, one f16 scale per 32), stated bound: mean 0.12, max 6,
/// argmax on ≥ 120 of the 128 rows. The max is loose for the reason the manifest gives for
/// q8_0 activations: the perturbed residual flips an expert whose router gap is small and
/// that row then differs by several units. Measured (queries quantized to q8_0 for the score
/// kernel, as ggml does): l0 max 5.2 / mean 0.105 / 123 rows, l1 1.45 / 0.074 / 123.
#[test]
fn q8_0_kv_long_sequences_within_stated_bound() {
    for (i, (max, mean, agree)) in long_vs_transformers(KvType::Q8_0).into_iter().enumerate() {
        assert!(
            max <= 6.0 && mean <= 0.12,
            "q8_0 l{i}: max {max} mean {mean}"
        );
        assert!(agree >= 120, "q8_0 l{i}: argmax {agree}/128");
    }
}

/// Deterministic pseudo-random values in [−a, a).
fn noise(n: usize, seed: u64, a: f32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a
        })
        .collect()
}

/// The whole score matrix `[n × n]` of one head, causal (+ window) mask, softmax per row in
/// f64, output = P·V.
fn full_matrix(r: &Rows, q: &[f32], n: usize, n_head: usize, window: Option<usize>) -> Vec<f32> {
    let hd = r.hd;
    let group = n_head / r.n_kv;
    let mut out = vec![0f32; n * n_head * hd];
    for h in 0..n_head {
        let g = h / group;
        let mut s = vec![f64::NEG_INFINITY; n * n];
        for t in 0..n {
            let lo = window.map_or(0, |w| (t + 1).saturating_sub(w));
            for u in lo..=t {
                let qa = &q[(t * n_head + h) * hd..][..hd];
                let ka = &r.k[(u * r.n_kv + g) * hd..][..hd];
                s[t * n + u] = qa.iter().zip(ka).map(|(a, b)| (a * b) as f64).sum();
            }
        }
        for t in 0..n {
            let row = &s[t * n..(t + 1) * n];
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = row.iter().map(|x| (x - m).exp()).sum();
            let o = &mut out[(t * n_head + h) * hd..][..hd];
            for (u, x) in row.iter().enumerate() {
                let p = (x - m).exp() / z;
                if p > 0.0 {
                    for (d, oo) in o.iter_mut().enumerate() {
                        *oo += (p * r.v[(u * r.n_kv + g) * hd + d] as f64) as f32;
                    }
                }
            }
        }
    }
    out
}

/// 8,192 tokens in one prefill call (tiles × key blocks × splits) and one decode query at the
/// end, global and sliding (window 1024): equal to the full-matrix attention.
#[test]
fn tiled_attention_equals_full_matrix_at_8192_tokens() {
    let (n, n_head, n_kv, hd) = (8192, 2, 1, 32);
    let r = Rows {
        hd,
        n_kv,
        k: noise(n * n_kv * hd, 1, 0.6),
        v: noise(n * n_kv * hd, 2, 1.0),
    };
    let q = noise(n * n_head * hd, 3, 0.6);
    for window in [None, Some(1024)] {
        let want = full_matrix(&r, &q, n, n_head, window);
        let mut got = vec![0f32; want.len()];
        let f = Flash {
            q: &q,
            n,
            p0: 0,
            n_head,
            n_kv_head: n_kv,
            scale: 1.0,
            window,
            bidirectional: &[],
        };
        flash::attention(&r, &f, &mut got);
        let (max, _) = diff(&got, &want);
        eprintln!("window {window:?}: prefill of {n} tokens, max |tiled − full| {max:.2e}");
        assert!(max < 2e-5, "window {window:?}: {max}");
        // decode: the last query alone at position n − 1 (split-K over the threads)
        let qd = n_head * hd;
        let mut one = vec![0f32; qd];
        let f = Flash {
            q: &q[(n - 1) * qd..],
            n: 1,
            p0: n - 1,
            ..f
        };
        flash::attention(&r, &f, &mut one);
        let (max, _) = diff(&one, &want[(n - 1) * qd..]);
        assert!(max < 2e-5, "decode, window {window:?}: {max}");
    }
}

/// Sliding layers read only their window: after 600 tokens every sliding-layer cell that does
/// not hold one of the last `window − 1` positions is overwritten with NaN; a 16-token batch
/// and 8 decoded tokens must still give exactly the logits of an unpoisoned run.
#[test]
fn sliding_layers_read_only_their_window() {
    let m = manifest();
    let toks = tokens(&m["long_sequences"]["sequences"][0]["tokens"]);
    let run = |poison: bool| {
        let mut g = Gemma4::load(tiny("f32"), &opts(KvType::F16, 1024), Precision::Exact).unwrap();
        g.forward(&toks[..600], Logits::Last).unwrap();
        if poison {
            g.kv_cache_mut().poison_outside_window();
        }
        let mut out = g.forward(&toks[600..616], Logits::All).unwrap();
        for &t in &toks[616..624] {
            if poison {
                g.kv_cache_mut().poison_outside_window();
            }
            out.extend(g.forward(&[t], Logits::Last).unwrap());
        }
        out
    };
    let (clean, poisoned) = (run(false), run(true));
    assert!(
        poisoned.iter().all(|x| x.is_finite()),
        "a poisoned cell was read"
    );
    assert_eq!(clean, poisoned);
}

/// Memory during a 16,384-token run grows by the KV formula and nothing else: the cache's
/// allocated bytes equal the full-context estimate (global 2 layers × 1 head × 128 × f16 per
/// token, one tensor on these K = V layers; rings of 8 + 255 cells), and after a
/// 2,048-token warm-up the process's anonymous RSS grows by less than the cache's growth plus
/// 8 MiB (a 16K × 16K f32 score matrix alone would be 1 GiB).
#[test]
fn memory_grows_by_the_kv_formula_only() {
    // The process's RSS is the measure, and the other tests of this binary run in parallel
    // threads of the same process: measure in a child process that runs this test alone.
    // LODE_TEST_RUNNER is the command that runs this target's executables (scripts/arm-test.sh:
    // `qemu-aarch64 -cpu max`): under qemu-user the kernel cannot exec the aarch64 test binary
    // itself (no binfmt_misc: "Exec format error"), so the child goes through qemu too.
    if std::env::var_os("LODE_MEMORY_TEST_CHILD").is_none() {
        let exe = std::env::current_exe().unwrap();
        let runner = std::env::var("LODE_TEST_RUNNER").unwrap_or_default();
        let mut runner = runner.split_whitespace();
        let mut child = match runner.next() {
            Some(program) => {
                let mut c = std::process::Command::new(program);
                c.args(runner).arg(exe);
                c
            }
            None => std::process::Command::new(exe),
        };
        let out = child
            .args([
                "memory_grows_by_the_kv_formula_only",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("LODE_MEMORY_TEST_CHILD", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        eprintln!("{text}");
        assert!(
            out.status.success() && text.contains("1 passed"),
            "the child run failed"
        );
        return;
    }
    let n = 16_384;
    let mut model =
        model::load_with(tiny("q8_0"), &opts(KvType::F16, n), Precision::Kernels).unwrap();
    let est = model.kv_estimate().unwrap();
    // tiny: global layers 2 and 4 (1 KV head × 128, K = V), sliding 0, 1, 3 (2 heads × 64)
    assert_eq!(est.global_per_token, 2 * 128 * 2);
    assert_eq!(est.sliding_window, 3 * (2 * 2 * 64 * 2) * 8);
    assert_eq!(
        model.kv_allocated(),
        0,
        "nothing allocated before the first token"
    );
    let toks: Vec<u32> = noise(n, 7, 1.0)
        .iter()
        .map(|x| 5 + ((x.abs() * 400.0) as u32 % 400))
        .collect();
    // warm up on the first chunk (thread pool, scratch buffers, kernel tables), then measure
    model.forward(&toks[..2048], Logits::Last).unwrap();
    let kv0 = model.kv_allocated();
    let mut mem = lode::engine::MemoryTracker::new();
    let before = mem.peaks().rss_anon;
    for chunk in toks[2048..].chunks(2048) {
        model.forward(chunk, Logits::Last).unwrap();
        mem.sample();
    }
    assert_eq!(model.kv_allocated(), est.total());
    let kv_growth = est.total() - kv0;
    if let (Some(b), Some(a)) = (before, mem.peaks().rss_anon) {
        let growth = a.saturating_sub(b);
        eprintln!(
            "16K tokens: KV allocated {} B (estimate {} B; {kv_growth} B after warm-up), \
             anonymous RSS +{growth} B",
            model.kv_allocated(),
            est.total(),
        );
        assert!(
            growth <= kv_growth + (8 << 20),
            "RSS grew {growth} B for {kv_growth} B of cache"
        );
    }
}

/// docs/gemma4.md §4 for 26B-A4B at 262,144 tokens, from the doc's numbers: 5 global layers
/// × 2 KV heads × 512 (K and V: 2,048 values per token), 25 sliding layers × 8 × 256 × 2
/// (4,096 values) × 1,024 cells; f16 2 bytes, q8_0 34 bytes per 32. llama.cpp's layout stores
/// K and V on K = V layers (the table); lode stores one tensor there ("caching only V halves
/// the global cache to 10 KiB/token f16").
#[test]
fn kv_bytes_of_26b_a4b_match_the_design_formula() {
    use lode::synth::gemma4::Gemma4Shape;
    use lode::synth::Recipe;
    let dir = common::tmp_dir("longctx-26b");
    let path = dir.join("gemma4-26b-a4b-sparse.gguf");
    Gemma4Shape::b26_a4b()
        .spec(Recipe::Q4KM)
        .unwrap()
        .write_sparse(&path)
        .unwrap();
    let t: u64 = 262_144;
    for (ty, num, den) in [("f16", 2u64, 1u64), ("q8_0", 34, 32)] {
        let bytes = |values: u64| values * num / den;
        let j = inspect_json(&path, &["--ctx", "262144", "--kv-type", ty]);
        let kv = &j["kv_cache"];
        let global_table = 5 * bytes(2048); // 20,480 B f16, 10,880 B q8_0
        let sliding_table = 25 * bytes(4096) * 1024; // 200 MiB f16, 106.25 MiB q8_0
        assert_eq!(
            kv["bytes"].as_u64().unwrap(),
            global_table * t + sliding_table
        );
        let l = &kv["lode"];
        let get = |k: &str| l[k].as_u64().unwrap();
        assert_eq!(get("global_bytes_per_token"), global_table / 2, "{ty}");
        assert_eq!(get("global_bytes"), global_table / 2 * t, "{ty}");
        assert_eq!(get("sliding_window_bytes"), sliding_table, "{ty}");
        assert_eq!(get("batch_slack_bytes"), 25 * bytes(4096) * 255, "{ty}");
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        eprintln!(
            "{ty}: llama.cpp layout {:.2} GiB + {:.1} MiB; lode {:.2} GiB + {:.1} MiB",
            gib(global_table * t),
            sliding_table as f64 / (1 << 20) as f64,
            gib(get("global_bytes")),
            get("sliding_window_bytes") as f64 / (1 << 20) as f64
        );
    }
    // the table's totals: 5.0 GiB (f16) and 2.66 GiB (q8_0) for the global part
    assert_eq!(20_480 * t, 5 << 30);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Prefix reuse past the window: after a 600-token prompt and 300 more tokens (more than the
/// rings' 255-cell slack), a new prompt sharing the first 600 tokens rewinds through the
/// checkpoint taken at the end of the first prompt instead of recomputing from 0, and its
/// logits equal a fresh run's.
#[test]
fn prefix_reuse_past_the_window_uses_the_checkpoint() {
    use lode::server::prefix::KvPrefix;
    let m = manifest();
    let toks = tokens(&m["long_sequences"]["sequences"][1]["tokens"]);
    let (a, rest, b) = (&toks[..600], &toks[600..900], &toks[2000..2020]);
    let load =
        || model::load_with(tiny("f32"), &opts(KvType::F16, 2048), Precision::Exact).unwrap();
    let mut model = load();
    let mut prefix = KvPrefix::new();
    model.forward(a, Logits::Last).unwrap();
    model.checkpoint(); // what Session::generate does after every prompt
    model.forward(rest, Logits::Last).unwrap();
    prefix.record(model.as_ref(), a, rest);
    assert!(
        model.truncate(600).is_err(),
        "the rings alone cannot rewind 300"
    );
    let prompt: Vec<u32> = a.iter().chain(b).copied().collect();
    let reused = prefix.prepare(model.as_mut(), &prompt);
    assert_eq!(reused, 600, "rewound through the checkpoint");
    let got = model.forward(&prompt[reused..], Logits::All).unwrap();

    let mut fresh = load();
    let all = fresh.forward(&prompt, Logits::All).unwrap();
    let nv = fresh.n_vocab();
    let (max, _) = diff(&got, &all[600 * nv..]);
    eprintln!("reused 600 of 620 tokens: max |reused − fresh| {max:.2e}");
    // only summation order differs (other query tiles and key splits)
    assert!(max < 1e-3, "{max}");

    // without a checkpoint the same rewind falls back to 0
    let mut plain = load();
    plain.forward(a, Logits::Last).unwrap();
    plain.forward(rest, Logits::Last).unwrap();
    assert_eq!(plain.rewind(600), 0);
}

/// A context whose full-size cache cannot fit the available memory is refused at load with a
/// typed error naming the context, the size and the memory available; the binary adds the
/// flags that help (nothing is allocated up front, so the check is against the estimate).
#[test]
fn a_context_that_cannot_fit_is_a_clear_error() {
    let r = model::load_with(
        tiny("q8_0"),
        &opts(KvType::F16, 1 << 40),
        Precision::Kernels,
    );
    let e = r.err().expect("a 2^40-token context must not load");
    assert!(
        matches!(
            e,
            lode::Error::KvTooLarge {
                n_ctx: 1099511627776,
                kv_type: KvType::F16,
                ..
            }
        ),
        "{e}"
    );
    let e = e.to_string();
    assert!(
        e.contains("1099511627776") && e.contains("available"),
        "{e}"
    );
    // the same model at a sane context loads and has allocated nothing yet
    let m = model::load_with(tiny("q8_0"), &opts(KvType::Q8_0, 4096), Precision::Kernels).unwrap();
    assert_eq!(m.kv_allocated(), 0);
}

/// Attention alone for one decoded token on the 26B-A4B shapes (25 sliding layers: 8 KV heads
/// × 256, window 1024; 5 global: 2 KV heads × 512, K = V; 16 query heads) at depth 4,096, f16
/// and q8_0 cache. Prints milliseconds per token; compare with the whole decode step at depth
/// 0 (docs/performance.md, "Long context"). `cargo test --release --test long_context --
/// --ignored attention_cost --nocapture`
#[test]
#[ignore]
fn attention_cost_per_token_26b_shapes() {
    use lode::model::kv_cache::{KFromV, KvCache, LayerSpec};
    let depth = 4096;
    let freqs: Vec<f32> = (0..256).map(|i| if i < 64 { 1.0 } else { 1e30 }).collect();
    let rope = lode::ops::Rope::new(1e6, 512, Some(&freqs), 1.0, Precision::Kernels);
    let specs: Vec<LayerSpec> = (0..30)
        .map(|il| {
            let global = (il + 1) % 6 == 0;
            LayerSpec {
                n_kv_head: if global { 2 } else { 8 },
                head_dim: if global { 512 } else { 256 },
                window: (!global).then_some(1024),
                k_from_v: global.then(|| KFromV {
                    norm: vec![1.0; 512],
                    inv_freq: rope.inv_freq().to_vec(),
                }),
            }
        })
        .collect();
    for ty in [KvType::F16, KvType::Q8_0] {
        let mut cache = KvCache::new(&specs, ty, depth + 1, 256).unwrap();
        for pos in 0..=depth {
            for (il, s) in specs.iter().enumerate() {
                let n = s.n_kv_head * s.head_dim;
                let row = noise(n, (pos * 31 + il) as u64, 1.0);
                cache.write(il, pos, &row, &row);
            }
        }
        cache.advance(depth + 1);
        let mut out = vec![0f32; 16 * 512];
        let qs: Vec<Vec<f32>> = specs
            .iter()
            .map(|s| noise(16 * s.head_dim, 9, 0.1))
            .collect();
        // best of 5 tokens (the machine is shared), kernels and the plain Rust path on
        // dequantized rows (the path before the kernels) alternating
        let mut best = [f64::INFINITY; 2];
        let mut outs = [vec![0f32; 16 * 512], vec![0f32; 16 * 512]];
        for _ in 0..5 {
            for (path, best) in best.iter_mut().enumerate() {
                let t0 = std::time::Instant::now();
                for (il, s) in specs.iter().enumerate() {
                    let kv = cache.layer(il);
                    let f = Flash {
                        q: &qs[il],
                        n: 1,
                        p0: depth,
                        n_head: 16,
                        n_kv_head: s.n_kv_head,
                        scale: 1.0,
                        window: s.window,
                        bidirectional: &[],
                    };
                    let o = &mut out[..16 * s.head_dim];
                    if path == 0 {
                        flash::attention(&kv, &f, o);
                    } else {
                        flash::attention(&Dequantized(kv), &f, o);
                    }
                    // keep the last layer's output of each path
                    outs[path][..o.len()].copy_from_slice(o);
                }
                *best = best.min(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
        eprintln!(
            "{ty}: attention of one decoded token at depth {depth}, all 30 layers: kernels \
             {:.1} ms, plain path {:.1} ms ({:.1}x; best of 5, {} threads)",
            best[0],
            best[1],
            best[1] / best[0],
            rayon::current_num_threads()
        );
        assert!(out.iter().all(|x| x.is_finite()));
        let (max, _) = diff(&outs[0], &outs[1]);
        assert!(max < 2e-2, "{ty}: kernels vs plain path {max}");
    }
}

/// A cache layer seen only through its dequantized f32 rows (`keys` / `values`): the plain
/// Rust path of the tiled attention.
struct Dequantized<'a>(lode::model::kv_cache::LayerView<'a>);

impl KvBlocks for Dequantized<'_> {
    fn head_dim(&self) -> usize {
        KvBlocks::head_dim(&self.0)
    }
    fn keys(&self, g: usize, t0: usize, out: &mut [f32]) {
        self.0.keys(g, t0, out)
    }
    fn values(&self, g: usize, t0: usize, out: &mut [f32]) {
        self.0.values(g, t0, out)
    }
}

/// The kernel path (f16 / q8_0 rows read in place by the C kernels, K = V keys derived per
/// tile) equals the plain path on the same dequantized rows: global and sliding layers, K = V
/// with partial RoPE, decode and prefill, across chunk boundaries and the ring wrap.
#[test]
fn kernel_attention_equals_dequantized_rows() {
    use lode::model::kv_cache::{KFromV, KvCache, LayerSpec};
    let inv_freq: Vec<f32> = (0..64)
        .map(|i| {
            if i < 16 {
                10000f32.powf(-(i as f32) / 16.0)
            } else {
                0.0
            }
        })
        .collect();
    let specs = vec![
        LayerSpec {
            n_kv_head: 2,
            head_dim: 64,
            window: Some(100),
            k_from_v: None,
        },
        LayerSpec {
            n_kv_head: 1,
            head_dim: 128,
            window: None,
            k_from_v: Some(KFromV {
                norm: noise(128, 5, 1.0).iter().map(|x| 1.0 + x).collect(),
                inv_freq,
            }),
        },
        LayerSpec {
            n_kv_head: 2,
            head_dim: 64,
            window: None,
            k_from_v: None,
        },
    ];
    let n_head = 8;
    for ty in [KvType::F16, KvType::Q8_0] {
        let depth = 700;
        let mut cache = KvCache::new(&specs, ty, depth + 40, 32).unwrap();
        for pos in 0..depth + 40 {
            for (il, s) in specs.iter().enumerate() {
                let n = s.n_kv_head * s.head_dim;
                let k = noise(n, (pos * 7 + il) as u64, 1.0);
                let v = noise(n, (pos * 13 + il + 99) as u64, 1.0);
                cache.write(il, pos, &k, &v);
            }
        }
        cache.advance(depth + 40);
        for (il, s) in specs.iter().enumerate() {
            for (p0, n) in [(depth + 39, 1), (depth, 37), (5, 1)] {
                let hd = s.head_dim;
                let q = noise(n * n_head * hd, (il * 3 + n) as u64, 0.5);
                let f = Flash {
                    q: &q,
                    n,
                    p0,
                    n_head,
                    n_kv_head: s.n_kv_head,
                    scale: 0.3,
                    window: s.window,
                    bidirectional: &[],
                };
                let mut want = vec![0f32; q.len()];
                flash::attention(&Dequantized(cache.layer(il)), &f, &mut want);
                let mut got = vec![0f32; q.len()];
                flash::attention(&cache.layer(il), &f, &mut got);
                let (max, _) = diff(&got, &want);
                // q8_0 quantizes the queries too (as ggml does)
                let tol = if ty == KvType::Q8_0 { 2e-2 } else { 1e-4 };
                assert!(max < tol, "{ty} layer {il} p0 {p0} n {n}: max {max:.2e}");
            }
        }
    }
}
