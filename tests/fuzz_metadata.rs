//! The metadata fuzz target as a deterministic loop (tests/common/mutate.rs): mutated metadata
//! of the tiny Gemma 4 file through open, tokenizer, template, `model::load` and one forward
//! token. CI runs `LODE_FUZZ_ITERS` cases (default 300, a few seconds); the long run is
//!
//! ```text
//! LODE_FUZZ_ITERS=100000 LODE_FUZZ_SEED=1 cargo test --test fuzz_metadata -- --nocapture
//! ```
//!
//! Any single allocation over 1 GiB aborts with the case's seed (the unbounded allocations
//! this guards against were 34 GB); a panic fails the test with the seed.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use common::mutate::{self, Base, Reached, Seeded, Source};

/// The case running now, for the allocator's abort message.
static CASE: AtomicU64 = AtomicU64::new(u64::MAX);
const MAX_ALLOC: usize = 1 << 30;

struct Capped;

// SAFETY: forwards to the system allocator unchanged, except that it fails (null) requests
// above MAX_ALLOC, which the caller turns into an allocation-failure abort.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.size() > MAX_ALLOC {
            let _ = writeln!(
                std::io::stderr(),
                "fuzz_metadata: case seed {} asked for {} bytes",
                CASE.load(Ordering::Relaxed),
                l.size()
            );
            return std::ptr::null_mut();
        }
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `alloc` with `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new > MAX_ALLOC {
            let _ = writeln!(
                std::io::stderr(),
                "fuzz_metadata: case seed {} asked for {new} bytes",
                CASE.load(Ordering::Relaxed)
            );
            return std::ptr::null_mut();
        }
        // SAFETY: `p` came from `alloc` with `l`.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Capped = Capped;

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn mutated_metadata_never_panics_or_allocates_without_bound() {
    let iters = env_u64("LODE_FUZZ_ITERS", 300);
    let seed0 = env_u64("LODE_FUZZ_SEED", 0);
    let base = Base::load(&common::tiny::fixture(
        "gemma4-tiny/gguf/gemma4-tiny-public-q4_0.gguf",
    ));
    let dir = common::cli::tmp_dir("fuzz-metadata");
    let path = dir.join("case.gguf");
    // Errors are expected; only panics are findings (printed by the hook with the seed).
    let mut counts = [0u64; 4];
    let t0 = std::time::Instant::now();
    for i in 0..iters {
        let seed = seed0.wrapping_mul(1 << 32).wrapping_add(i);
        CASE.store(seed, Ordering::Relaxed);
        let mut src = Seeded(seed);
        let kv = mutate::mutate(&base, &mut src);
        // mostly a small context (fast); now and then a huge one
        let n_ctx = match src.below(8) {
            0 => mutate::CONTEXTS[src.below(mutate::CONTEXTS.len())],
            _ => 64,
        };
        mutate::write(&base, &kv, &path);
        let r = std::panic::catch_unwind(|| mutate::exercise(&path, n_ctx));
        if i > 0 && i % 10_000 == 0 {
            eprintln!(
                "fuzz_metadata: {i} cases, {:.0} s",
                t0.elapsed().as_secs_f64()
            );
        }
        match r {
            Ok(reached) => counts[reached as usize] += 1,
            Err(_) => {
                let changed: Vec<String> = kv
                    .iter()
                    .filter(|(k, v)| !base.kv.iter().any(|(bk, bv)| bk == k && bv == v))
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect();
                panic!("case seed {seed} (n_ctx {n_ctx}) panicked; changed keys: {changed:?}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "fuzz_metadata: {iters} cases in {:.1} s (seed {seed0}): stopped at open {}, \
         before load {}, after load {}, forward ran {}",
        t0.elapsed().as_secs_f64(),
        counts[Reached::Open as usize],
        counts[Reached::Tokenizer as usize],
        counts[Reached::Load as usize],
        counts[Reached::Forward as usize],
    );
    // The mutations must leave many cases loadable, or the target only tests the refusals.
    assert!(
        counts[Reached::Forward as usize] * 10 >= iters,
        "too few cases reached the forward pass: {counts:?}"
    );
}
