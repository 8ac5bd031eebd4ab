//! The machine's streaming-read bandwidth: how fast `n_threads` threads can sum a buffer much
//! larger than the caches. Decode of a quantized model reads every active weight once per
//! token, so bytes per token ÷ this number is the floor on time per token.

use std::hint::black_box;
use std::time::Instant;

use rayon::prelude::*;

use crate::{Error, Result};

/// The buffer `lode bench` reads by default: 1 GiB, far beyond any L3 cache.
pub const DEFAULT_BYTES: usize = 1 << 30;

/// Best-of-`reps` read bandwidth in bytes/s over a `bytes`-sized buffer, read by the current
/// rayon pool (run it inside `pool.install` to choose the thread count).
///
/// The buffer is written once before timing so every page is resident (a never-written page
/// would read the shared zero page and measure the cache instead of DRAM). It is freed on
/// return, so it does not count towards the RSS of later benchmark rows.
pub fn measure(bytes: usize, reps: usize) -> Result<f64> {
    let n = bytes / std::mem::size_of::<u64>();
    if n < 1024 || reps == 0 {
        return Err(Error::Input(format!(
            "bandwidth: buffer of {bytes} bytes and {reps} repetitions is too small to measure"
        )));
    }
    let mut map = probe_buffer(n)?;
    // SAFETY: the mapping is page aligned (so there is no unaligned head) and every bit pattern
    // is a valid u64; `map` outlives the view.
    let (head, buf, _) = unsafe { map.align_to_mut::<u64>() };
    debug_assert!(head.is_empty());
    let buf = &mut buf[..n];
    // Distinct non-zero values, written in parallel so first-touch spreads pages over the
    // threads that will read them (matters on NUMA machines).
    buf.par_chunks_mut(1 << 16)
        .enumerate()
        .for_each(|(c, chunk)| {
            for (i, x) in chunk.iter_mut().enumerate() {
                *x = ((c << 16) + i) as u64 | 1;
            }
        });
    let threads = rayon::current_num_threads().max(1);
    // A few chunks per thread, each a multiple of 4 KiB, so threads stream contiguous ranges.
    let chunk = n.div_ceil(threads * 4).next_multiple_of(512);
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t0 = Instant::now();
        let s: u64 = buf
            .par_chunks(chunk)
            .map(sum_u64)
            .reduce(|| 0, u64::wrapping_add);
        let dt = t0.elapsed().as_secs_f64();
        black_box(s);
        best = best.min(dt);
    }
    Ok((n * std::mem::size_of::<u64>()) as f64 / best)
}

/// Anonymous memory for `n` u64, on 2 MiB pages where the OS gives them: lode maps weights that
/// fit in memory with `MADV_HUGEPAGE`, and a probe on 4 KiB pages also pays for page walks
/// (`lode bench --dry-run -t 1,2` before/after: 22.7-23.1 → 32.2-34.0 GB/s at 2 threads on the
/// 2-vCPU Xeon VM, docs/performance.md #12 night run), which put the bound below what decode
/// reached.
fn probe_buffer(n: usize) -> Result<memmap2::MmapMut> {
    let bytes = n * std::mem::size_of::<u64>();
    let map = memmap2::MmapMut::map_anon(bytes)
        .map_err(|e| Error::Input(format!("bandwidth: cannot map {bytes} bytes: {e}")))?;
    #[cfg(target_os = "linux")]
    {
        // Only a hint: without transparent huge pages the probe runs on small pages.
        let _ = map.advise(memmap2::Advice::HugePage);
    }
    Ok(map)
}

/// Sum with four independent accumulators, so the loop is bound by loads, not by the
/// latency of one add chain; the compiler vectorises it with the baseline SIMD.
fn sum_u64(xs: &[u64]) -> u64 {
    let mut acc = [0u64; 4];
    let mut quads = xs.chunks_exact(4);
    for q in &mut quads {
        for k in 0..4 {
            acc[k] = acc[k].wrapping_add(q[k]);
        }
    }
    let tail = quads
        .remainder()
        .iter()
        .fold(0u64, |a, &x| a.wrapping_add(x));
    acc.iter().fold(tail, |a, &x| a.wrapping_add(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_element() {
        let xs: Vec<u64> = (1..=1003).collect();
        assert_eq!(sum_u64(&xs), 1003 * 1004 / 2);
    }

    #[test]
    fn measures_something_positive() {
        let bw = measure(8 << 20, 2).unwrap();
        assert!(bw.is_finite() && bw > 1e8, "{bw}");
        assert!(measure(100, 1).is_err());
    }
}
