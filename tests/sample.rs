//! Sampler stages against expectations worked out by hand from llama.cpp's definitions.

use lode::sample::{Sampler, SamplerConfig};

/// Every stage off, temperature 1: the distribution is the plain softmax, in id order. The
/// penalties are the defaults (off: repeat 1, presence and frequency 0, over the last 64).
fn neutral() -> SamplerConfig {
    let c = SamplerConfig {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        seed: 1,
        ..SamplerConfig::default()
    };
    let penalties = (c.repeat_penalty, c.presence_penalty, c.frequency_penalty);
    assert_eq!((penalties, c.penalty_last_n), ((1.0, 0.0, 0.0), 64));
    c
}

fn ln(ps: &[f32]) -> Vec<f32> {
    ps.iter().map(|p| p.ln()).collect()
}

fn ids(s: &mut Sampler, logits: &[f32]) -> Vec<u32> {
    s.distribution(logits).iter().map(|c| c.id).collect()
}

#[test]
fn greedy_is_argmax_and_lowest_id_wins_ties() {
    let mut s = Sampler::new(SamplerConfig::greedy());
    assert_eq!(s.sample(&[0.1, 3.0, -2.0, 2.9]), 1);
    assert_eq!(s.sample(&[1.0, 5.0, 5.0, 4.0]), 1);
    assert_eq!(s.sample(&[-1.0, -1.0]), 0);
    let d = s.distribution(&[0.0, 0.5, 0.25]);
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].id, d[0].p), (1, 1.0));
}

#[test]
fn top_k_1_is_argmax_whatever_the_seed() {
    let logits = [0.3, -1.0, 2.5, 2.4, 0.0, 1.0];
    for seed in 0..50 {
        let mut s = Sampler::new(SamplerConfig {
            top_k: 1,
            seed,
            ..neutral()
        });
        assert_eq!(s.sample(&logits), 2);
    }
}

#[test]
fn top_k_keeps_the_k_largest_sorted() {
    let mut s = Sampler::new(SamplerConfig {
        top_k: 3,
        ..neutral()
    });
    assert_eq!(ids(&mut s, &[0.3, -1.0, 2.5, 2.4, 0.0, 1.0]), [2, 3, 5]);
}

#[test]
fn top_p_keeps_the_minimal_prefix() {
    // Probabilities 0.05 0.5 0.1 0.2 0.15 at ids 0..5. Sorted: 0.5(1) 0.2(3) 0.15(4) 0.1(2) 0.05(0);
    // running sums 0.5 0.7 0.85 0.95 1.0.
    let logits = ln(&[0.05, 0.5, 0.1, 0.2, 0.15]);
    let cases: [(f32, &[u32]); 5] = [
        (0.4, &[1]),
        (0.6, &[1, 3]),
        (0.8, &[1, 3, 4]),
        (0.9, &[1, 3, 4, 2]),
        (0.99, &[1, 3, 4, 2, 0]),
    ];
    for (p, want) in cases {
        let mut s = Sampler::new(SamplerConfig {
            top_p: p,
            ..neutral()
        });
        assert_eq!(ids(&mut s, &logits), want, "top_p {p}");
    }
    // The survivors are renormalised: {0.5, 0.2} -> {5/7, 2/7}.
    let mut s = Sampler::new(SamplerConfig {
        top_p: 0.6,
        ..neutral()
    });
    let d = s.distribution(&logits);
    assert!((d[0].p - 5.0 / 7.0).abs() < 1e-6 && (d[1].p - 2.0 / 7.0).abs() < 1e-6);
}

#[test]
fn top_p_over_a_large_vocabulary() {
    // 400 equal tokens (ids 0..400) hold all but ~1e-11 of the mass; 600 others are negligible.
    // top_p 0.9 needs 0.9 * 400 = 360 of them (361 if f32 rounding leaves the sum a hair short);
    // equal logits are ordered by id, so the survivors are exactly the lowest ids.
    let logits: Vec<f32> = (0..1000)
        .map(|i| if i < 400 { 0.0 } else { -30.0 })
        .collect();
    let mut s = Sampler::new(SamplerConfig {
        top_p: 0.9,
        ..neutral()
    });
    let kept = ids(&mut s, &logits);
    assert!(
        kept.len() == 360 || kept.len() == 361,
        "kept {}",
        kept.len()
    );
    assert!(kept.iter().enumerate().all(|(i, &id)| id == i as u32));
}

#[test]
fn min_p_drops_tokens_below_the_scaled_max() {
    // p = 0.5 0.3 0.1 0.06 0.04; min_p 0.15 -> threshold 0.075 keeps 3; min_p 0.1 -> 0.05 keeps 4.
    let logits = ln(&[0.5, 0.3, 0.1, 0.06, 0.04]);
    for (min_p, want) in [(0.15, vec![0, 1, 2]), (0.1, vec![0, 1, 2, 3])] {
        let mut s = Sampler::new(SamplerConfig { min_p, ..neutral() });
        assert_eq!(ids(&mut s, &logits), want, "min_p {min_p}");
    }
}

#[test]
fn temperature_scales_logits_after_truncation() {
    // [1, 0] at T = 0.5 -> [2, 0]: p0 = e^2 / (e^2 + 1).
    let mut s = Sampler::new(SamplerConfig {
        temperature: 0.5,
        ..neutral()
    });
    let d = s.distribution(&[1.0, 0.0]);
    let e2 = 2f32.exp();
    assert!((d[0].p - e2 / (e2 + 1.0)).abs() < 1e-6);
    assert_eq!(d[0].logit, 2.0);

    // top-p sees the T = 1 distribution (p = 0.5 0.3 0.2 keeps two at top_p 0.75), even though
    // at T = 0.1 the first token alone would hold more than 0.75 of the mass.
    let mut s = Sampler::new(SamplerConfig {
        temperature: 0.1,
        top_p: 0.75,
        ..neutral()
    });
    assert_eq!(ids(&mut s, &ln(&[0.5, 0.3, 0.2])), [0, 1]);
}

#[test]
fn penalties_change_the_right_logits_by_the_right_amounts() {
    let cfg = SamplerConfig {
        repeat_penalty: 2.0,
        frequency_penalty: 0.5,
        presence_penalty: 0.25,
        ..neutral()
    };
    let logits = [0.0, 1.0, 0.5, -1.0, 0.0, 2.0, 0.0, 3.0];
    let mut s = Sampler::new(cfg.clone());
    for t in [5, 3, 5] {
        s.accept(t);
    }
    let got: Vec<f32> = s.distribution(&logits).iter().map(|c| c.logit).collect();
    // id 5: positive, seen twice: 2 / 2 - 2 * 0.5 - 0.25 = -0.25
    // id 3: non-positive, seen once: -1 * 2 - 1 * 0.5 - 0.25 = -2.75
    assert_eq!(got, [0.0, 1.0, 0.5, -2.75, 0.0, -0.25, 0.0, 3.0]);

    // A window of 2 forgets the first 5: both seen once. 5: 1 - 0.5 - 0.25 = 0.25.
    let mut s = Sampler::new(SamplerConfig {
        penalty_last_n: 2,
        ..cfg.clone()
    });
    for t in [5, 3, 5] {
        s.accept(t);
    }
    let got: Vec<f32> = s.distribution(&logits).iter().map(|c| c.logit).collect();
    assert_eq!(got, [0.0, 1.0, 0.5, -2.75, 0.0, 0.25, 0.0, 3.0]);

    // Penalties come before greedy: id 7 (3.0) seen once -> 3/2 - 0.75 = 0.75, so id 5 (2.0)
    // wins; once 5 is seen too (2/2 - 0.75 = 0.25), id 1 (1.0) does.
    let mut s = Sampler::new(SamplerConfig {
        temperature: 0.0,
        ..cfg
    });
    s.accept(7);
    assert_eq!(s.sample(&logits), 5);
    s.accept(5);
    assert_eq!(s.sample(&logits), 1);
    // Ids outside the vocabulary in the window are ignored, not a panic.
    s.accept(1_000_000);
    assert_eq!(s.sample(&logits), 1);
}

#[test]
fn same_seed_same_sequence() {
    let logits: Vec<f32> = (0..300).map(|i| ((i * 37) % 101) as f32 / 25.0).collect();
    let run = |seed| {
        let mut s = Sampler::new(SamplerConfig {
            seed,
            ..SamplerConfig::default()
        });
        (0..64).map(|_| s.sample(&logits)).collect::<Vec<u32>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
    // reset() restarts the stream.
    let mut s = Sampler::new(SamplerConfig {
        seed: 7,
        ..SamplerConfig::default()
    });
    let a: Vec<u32> = (0..16).map(|_| s.sample(&logits)).collect();
    s.reset();
    let b: Vec<u32> = (0..16).map(|_| s.sample(&logits)).collect();
    assert_eq!(a, b);
}

#[test]
fn draws_follow_the_distribution() {
    // p = 0.5 0.3 0.2; 20000 draws: each frequency within 0.015 (> 4 standard deviations).
    let logits = ln(&[0.5, 0.3, 0.2]);
    let mut s = Sampler::new(SamplerConfig {
        seed: 123,
        ..neutral()
    });
    let mut n = [0usize; 3];
    let draws = 20_000;
    for _ in 0..draws {
        n[s.sample(&logits) as usize] += 1;
    }
    for (i, want) in [0.5, 0.3, 0.2].into_iter().enumerate() {
        let f = n[i] as f64 / draws as f64;
        assert!((f - want).abs() < 0.015, "token {i}: {f} vs {want}");
    }
}

#[test]
fn validate_rejects_meaningless_values() {
    assert!(SamplerConfig::default().validate().is_ok());
    for bad in [
        SamplerConfig {
            top_p: 1.5,
            ..neutral()
        },
        SamplerConfig {
            min_p: -0.1,
            ..neutral()
        },
        SamplerConfig {
            repeat_penalty: 0.0,
            ..neutral()
        },
        SamplerConfig {
            temperature: f32::NAN,
            ..neutral()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}

#[test]
fn greedy_fast_path_picks_what_the_candidate_chain_picks() {
    // The arg-max shortcut must agree with the full chain (temperature 0 keeps the best
    // candidate, lowest id on a tie) on rows with ties, signed zeros and infinities.
    let mut rng = lode::sample::Rng::new(7);
    for round in 0..200 {
        let n = 1 + (rng.next_f64() * 3000.0) as usize;
        let mut row: Vec<f32> = (0..n)
            .map(|_| ((rng.next_f64() * 16.0) as i32 - 8) as f32 * 0.5)
            .collect();
        if round % 5 == 0 {
            row[(rng.next_f64() * n as f64) as usize] = f32::INFINITY;
        }
        if round % 7 == 0 {
            row.iter_mut()
                .for_each(|x| *x = if *x > 0.0 { -0.0 } else { *x });
            row[n / 2] = 0.0;
        }
        let want = Sampler::new(SamplerConfig::greedy()).distribution(&row)[0].id;
        assert_eq!(lode::sample::argmax(&row), want, "round {round}");
        assert_eq!(Sampler::new(SamplerConfig::greedy()).sample(&row), want);
    }
}

/// The one-pass top-k (no candidate per vocabulary entry) keeps the set, order and
/// probabilities that sorting every entry by (logit descending, id ascending) gives: many tied
/// logits, ±0, an infinity, k on and around the pass's 64-entry blocks.
#[test]
fn top_k_in_one_pass_equals_sorting_the_vocabulary() {
    let mut rng = lode::sample::Rng::new(11);
    for (n, levels) in [(1000usize, 7u64), (5000, 1_000_000), (200, 3)] {
        let mut logits: Vec<f32> = (0..n)
            .map(|_| (rng.next_u64() % levels) as f32 * 0.25 - 1.0)
            .collect();
        logits[n / 2] = -0.0;
        logits[n / 3] = 0.0;
        if levels == 7 {
            logits[n - 1] = f32::INFINITY;
        }
        for k in [1, 2, 40, 63, 64, 65, 150, n - 1] {
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.sort_by(|&a, &b| {
                let (x, y) = (logits[a as usize], logits[b as usize]);
                y.total_cmp(&x).then(a.cmp(&b))
            });
            order.truncate(k);
            let mut s = Sampler::new(SamplerConfig {
                top_k: k,
                ..neutral()
            });
            let d = s.distribution(&logits).to_vec();
            assert_eq!(
                d.iter().map(|c| c.id).collect::<Vec<_>>(),
                order,
                "n {n} k {k}"
            );
            // the probabilities are the softmax of the kept logits (checked where it is finite)
            let max = d[0].logit;
            if max.is_finite() {
                let z: f64 = d.iter().map(|c| ((c.logit - max) as f64).exp()).sum();
                for c in &d {
                    let want = (((c.logit - max) as f64).exp() / z) as f32;
                    assert!((c.p - want).abs() <= 1e-6, "n {n} k {k}: {} vs {want}", c.p);
                }
            }
        }
    }
}

/// The whole-row draw (no truncating stage: `lode bench`'s decode sampling) skips the candidate
/// chain; it must pick what drawing from `distribution()` with the same random stream picks,
/// at several temperatures, on rows with ties, masked (-inf) entries and large spreads.
#[test]
fn full_row_draw_picks_what_the_candidate_chain_picks() {
    let mut gen = lode::sample::Rng::new(5);
    for round in 0..60 {
        let n = 1 + (gen.next_f64() * 5000.0) as usize;
        let spread = [0.5, 4.0, 40.0][round % 3];
        let mut row: Vec<f32> = (0..n)
            .map(|_| ((gen.next_f64() * 64.0) as i32 - 32) as f32 / 32.0 * spread)
            .collect();
        if round % 4 == 0 {
            for i in (0..n).step_by(3) {
                row[i] = f32::NEG_INFINITY;
            }
            row[n - 1] = 0.25;
        }
        let temperature = [1.0, 0.7, 1.3][round % 3];
        let seed = 100 + round as u64;
        let cfg = SamplerConfig {
            temperature,
            seed,
            ..neutral()
        };
        let mut fast = Sampler::new(cfg.clone());
        let mut chain = Sampler::new(cfg);
        let probs: Vec<f32> = chain.distribution(&row).iter().map(|c| c.p).collect();
        let mut rng = lode::sample::Rng::new(seed);
        for draw in 0..8 {
            let u = rng.next_f64() as f32;
            let mut cum = 0.0f32;
            let want = probs
                .iter()
                .position(|&p| {
                    cum += p;
                    u < cum
                })
                .unwrap_or(n - 1) as u32;
            assert_eq!(fast.sample(&row), want, "round {round}, draw {draw}");
        }
    }
}
