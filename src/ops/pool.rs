//! A persistent worker pool for the many short parallel regions of one decoded token.
//!
//! Decoding a token runs a few hundred small matrix products; on rayon each is a fork-join in
//! which sleeping workers are woken through the kernel and the caller blocks on a latch, which
//! cost ~12% of a 26B-A4B token (docs/performance.md). This pool is ggml's shape instead: the
//! workers are started once and, between regions, spin on a counter the caller bumps, so
//! handing out a region costs a cache-line transfer. A worker that has seen no region for
//! [`SPIN`] parks on a condition variable, so an idle `lode serve` burns no CPU.
//!
//! A region is `run(n_items, f)`: the caller and the workers claim items `0..n_items` from one
//! atomic counter (uneven progress balances) and call `f(item)`; `run` returns when every item
//! is done. The caller always takes part, so a pool of `n` threads has `n − 1` workers. A pool
//! serves one region at a time: a region started while another runs on the same pool (a second
//! server worker, or a region inside a region) runs on its caller alone, with the same results.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// How long an idle worker spins before it parks.
const SPIN: Duration = Duration::from_micros(300);

/// The work of one region, as the workers see it.
type Task<'a> = dyn Fn(usize) -> Result<()> + Sync + 'a;

/// One region: the closure and its item counter, on the caller's stack while it runs.
struct Region<'a> {
    f: &'a Task<'a>,
    n_items: usize,
    next: AtomicUsize,
    /// The first error any thread met (later items still run to the end of the region).
    error: Mutex<Option<Error>>,
}

impl Region<'_> {
    /// Claims and runs items until none are left.
    fn drain(&self) {
        loop {
            let i = self.next.fetch_add(1, Relaxed);
            if i >= self.n_items {
                return;
            }
            if let Err(e) = (self.f)(i) {
                let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert(e);
            }
        }
    }
}

struct Shared {
    /// Bumped once per region; workers watch it.
    epoch: AtomicU64,
    /// The current region (type-erased; valid while `pending > 0`).
    region: AtomicPtr<()>,
    /// Workers that have not finished the current region yet.
    pending: AtomicUsize,
    /// A worker panicked inside a region (the panic is reported by the caller).
    panicked: AtomicBool,
    /// Parked workers, and the lock/condvar they park on.
    sleepers: AtomicUsize,
    park: Mutex<()>,
    wake: Condvar,
    shutdown: AtomicBool,
}

/// A fixed set of `n − 1` worker threads plus the caller.
pub struct Pool {
    n_threads: usize,
    shared: Arc<Shared>,
    /// Held by the region running now; a second caller runs its region alone.
    busy: Mutex<()>,
    handles: Vec<thread::JoinHandle<()>>,
}

impl Pool {
    /// A pool of `n_threads` threads (the caller and `n_threads − 1` workers).
    pub fn new(n_threads: usize) -> Pool {
        let n_threads = n_threads.max(1);
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            region: AtomicPtr::new(std::ptr::null_mut()),
            pending: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            park: Mutex::new(()),
            wake: Condvar::new(),
            shutdown: AtomicBool::new(false),
        });
        let handles = (1..n_threads)
            .map(|i| {
                let s = shared.clone();
                thread::Builder::new()
                    .name(format!("lode-pool-{i}"))
                    .spawn(move || worker(&s))
                    .expect("spawning a pool worker thread")
            })
            .collect();
        Pool {
            n_threads,
            shared,
            busy: Mutex::new(()),
            handles,
        }
    }

    /// The pool with as many threads as rayon's current pool (what `--threads` set), made on
    /// first use and kept for the life of the process.
    pub fn current() -> Arc<Pool> {
        thread_local! {
            static CACHED: std::cell::RefCell<Option<Arc<Pool>>> = const { std::cell::RefCell::new(None) };
        }
        let n = rayon::current_num_threads().max(1);
        CACHED.with(|c| {
            let mut c = c.borrow_mut();
            match &*c {
                Some(p) if p.n_threads == n => p.clone(),
                _ => {
                    let p = registry(n);
                    *c = Some(p.clone());
                    p
                }
            }
        })
    }

    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Calls `f(i)` for every `i` in `0..n_items`, spread over the pool's threads; returns
    /// when all are done, with the first error any of them returned. A panic in `f` is
    /// re-raised here.
    #[track_caller]
    pub fn run<F>(&self, n_items: usize, f: F) -> Result<()>
    where
        F: Fn(usize) -> Result<()> + Sync,
    {
        let region = Region {
            f: &f,
            n_items,
            next: AtomicUsize::new(0),
            error: Mutex::new(None),
        };
        let guard = match self.busy.try_lock() {
            Ok(g) if self.n_threads > 1 && n_items > 1 => Some(g),
            _ => None,
        };
        if guard.is_none() {
            // alone: the pool is busy (nested or concurrent region) or has nothing to share
            region.drain();
            return region
                .error
                .into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .map_or(Ok(()), Err);
        }
        let s = &*self.shared;
        s.pending.store(self.n_threads - 1, Relaxed);
        s.region.store(&region as *const Region as *mut (), Release);
        s.epoch.fetch_add(1, SeqCst);
        if s.sleepers.load(SeqCst) > 0 {
            let _g = s.park.lock().unwrap_or_else(|p| p.into_inner());
            s.wake.notify_all();
        }
        let t_start = trace::enabled().then(Instant::now);
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| region.drain()));
        let t_mine = t_start.map(|_| Instant::now());
        // Every worker must be done with `region` before it goes out of scope.
        let mut spins = 0u32;
        while s.pending.load(Acquire) != 0 {
            spins = spins.wrapping_add(1);
            if spins % 1024 == 0 {
                thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        s.region.store(std::ptr::null_mut(), Relaxed);
        if let (Some(t0), Some(tm)) = (t_start, t_mine) {
            trace::record(std::panic::Location::caller(), t0, tm, Instant::now());
        }
        drop(guard);
        if let Err(p) = mine {
            std::panic::resume_unwind(p);
        }
        if s.panicked.swap(false, Relaxed) {
            panic!("a thread-pool worker panicked");
        }
        match region.error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Pool {
    /// `f(i, piece)` for each `chunk`-element piece `i` of `data` (the last may be shorter),
    /// on this pool: the element-wise steps between matrix products, without waking a second
    /// set of threads (rayon's) beside the spinning workers.
    #[track_caller]
    pub fn for_chunks<T: Send>(
        &self,
        data: &mut [T],
        chunk: usize,
        f: impl Fn(usize, &mut [T]) + Sync,
    ) {
        self.for_chunk_pairs(data, chunk, &mut [] as &mut [()], 0, |i, a, _| f(i, a));
    }

    /// [`Pool::for_chunks`] over two slices cut alike: `f(i, a_piece, b_piece)`, piece `i`
    /// of `a` being elements `i·ca ..` and of `b` elements `i·cb ..` (each clipped to its
    /// slice), for as many pieces as `a` has.
    #[track_caller]
    pub fn for_chunk_pairs<A: Send, B: Send>(
        &self,
        a: &mut [A],
        ca: usize,
        b: &mut [B],
        cb: usize,
        f: impl Fn(usize, &mut [A], &mut [B]) + Sync,
    ) {
        let (na, nb, ca) = (a.len(), b.len(), ca.max(1));
        let (pa, pb) = (Disjoint::new(a), Disjoint::new(b));
        let clip = |start: usize, len: usize, n: usize| (start.min(n), (start + len).min(n));
        let done = self.run(na.div_ceil(ca), |i| {
            let ((a0, a1), (b0, b1)) = (clip(i * ca, ca, na), clip(i * cb, cb, nb));
            // SAFETY: item i alone takes elements a0..a1 of a and b0..b1 of b.
            f(i, unsafe { pa.part(a0, a1) }, unsafe { pb.part(b0, b1) });
            Ok(())
        });
        debug_assert!(done.is_ok(), "the closure returns no errors");
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.shutdown.store(true, SeqCst);
        s.epoch.fetch_add(1, SeqCst);
        {
            let _g = s.park.lock().unwrap_or_else(|p| p.into_inner());
            s.wake.notify_all();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// One pool per thread count, shared by every caller in the process.
fn registry(n: usize) -> Arc<Pool> {
    static POOLS: OnceLock<Mutex<Vec<Arc<Pool>>>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(p) = pools.iter().find(|p| p.n_threads == n) {
        return p.clone();
    }
    let p = Arc::new(Pool::new(n));
    pools.push(p.clone());
    p
}

fn worker(s: &Shared) {
    // the epoch the pool started with: a region published before this thread got here must
    // still be run, so do not read the current value
    let mut seen = 0;
    loop {
        // Wait for the next region: spin, then park.
        let start = Instant::now();
        let mut spins = 0u32;
        let mut now = s.epoch.load(Acquire);
        while now == seen {
            spins = spins.wrapping_add(1);
            std::hint::spin_loop();
            if spins % 256 == 0 && start.elapsed() > SPIN {
                let mut g = s.park.lock().unwrap_or_else(|p| p.into_inner());
                s.sleepers.fetch_add(1, SeqCst);
                while s.epoch.load(SeqCst) == seen {
                    g = s.wake.wait(g).unwrap_or_else(|p| p.into_inner());
                }
                s.sleepers.fetch_sub(1, SeqCst);
                drop(g);
            }
            now = s.epoch.load(Acquire);
        }
        seen = now;
        if s.shutdown.load(SeqCst) {
            return;
        }
        let ptr = s.region.load(Acquire) as *const Region;
        // SAFETY: the caller stored a pointer to a live `Region` before bumping the epoch and
        // keeps it alive (on its stack) until `pending` reaches 0, which this worker only
        // signals after its last use of it below.
        let region = unsafe { &*ptr };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| region.drain())).is_err() {
            s.panicked.store(true, Relaxed);
        }
        s.pending.fetch_sub(1, Release);
    }
}

/// `LODE_TRACE_REGIONS=1`: where a decode step's time goes between the kernels. Per call site
/// of a shared region (`#[track_caller]` through `run`, `for_chunks` and the matmul entry
/// points): how many regions, their time, how long the caller waited at their ends for the
/// other threads, and the caller's own time since the previous region ended (serial steps;
/// gaps over 1 ms, e.g. between tokens, are counted apart). `lode bench` prints it after each
/// row. Regions a thread runs alone are not counted. Off, it costs one relaxed load a region.
pub mod trace {
    use std::collections::BTreeMap;
    use std::fmt::Write;
    use std::panic::Location;
    use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
    use std::sync::Mutex;
    use std::time::Instant;

    /// 0: not read yet, 1: off, 2: on
    static STATE: AtomicU8 = AtomicU8::new(0);

    /// Whether `LODE_TRACE_REGIONS` asks for the trace (read once).
    pub fn enabled() -> bool {
        match STATE.load(Relaxed) {
            0 => {
                let on = std::env::var_os("LODE_TRACE_REGIONS").is_some_and(|v| v != "0");
                STATE.store(if on { 2 } else { 1 }, Relaxed);
                on
            }
            s => s == 2,
        }
    }

    /// Turns the trace on or off for this process (tests).
    pub fn set_enabled(on: bool) {
        STATE.store(if on { 2 } else { 1 }, Relaxed);
    }

    #[derive(Default)]
    struct Site {
        regions: u64,
        region_s: f64,
        wait_s: f64,
        serial_s: f64,
    }

    #[derive(Default)]
    struct Log {
        sites: BTreeMap<(&'static str, u32), Site>,
        last_end: Option<Instant>,
        long_gaps: (u64, f64),
    }

    static LOG: Mutex<Option<Log>> = Mutex::new(None);

    /// One region at `at`: started at `t0`, the caller's own items done at `tm`, all at `t1`.
    pub(super) fn record(at: &'static Location<'static>, t0: Instant, tm: Instant, t1: Instant) {
        let mut g = LOG.lock().unwrap_or_else(|p| p.into_inner());
        let log = g.get_or_insert_with(Log::default);
        let gap = log
            .last_end
            .map_or(0.0, |e| t0.saturating_duration_since(e).as_secs_f64());
        log.last_end = Some(t1);
        let site = log.sites.entry((at.file(), at.line())).or_default();
        site.regions += 1;
        site.region_s += (t1 - t0).as_secs_f64();
        site.wait_s += (t1 - tm).as_secs_f64();
        if gap > 1e-3 {
            log.long_gaps.0 += 1;
            log.long_gaps.1 += gap;
        } else {
            site.serial_s += gap;
        }
    }

    /// The table since the last report (then cleared); `None` when nothing was recorded.
    pub fn report() -> Option<String> {
        let log = LOG.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        let ms = |s: f64| s * 1e3;
        let mut out = String::from(
            "| call site | regions | in regions ms | caller waiting ms | serial before ms |\n\
             | --- | ---: | ---: | ---: | ---: |\n",
        );
        let mut total = Site::default();
        for ((file, line), s) in &log.sites {
            let _ = writeln!(
                out,
                "| {file}:{line} | {} | {:.1} | {:.1} | {:.1} |",
                s.regions,
                ms(s.region_s),
                ms(s.wait_s),
                ms(s.serial_s)
            );
            total.regions += s.regions;
            total.region_s += s.region_s;
            total.wait_s += s.wait_s;
            total.serial_s += s.serial_s;
        }
        let _ = writeln!(
            out,
            "| total | {} | {:.1} | {:.1} | {:.1} |\n(and {} gaps over 1 ms: {:.1} ms)",
            total.regions,
            ms(total.region_s),
            ms(total.wait_s),
            ms(total.serial_s),
            log.long_gaps.0,
            ms(log.long_gaps.1)
        );
        Some(out)
    }
}

/// A mutable slice that the items of one region write in disjoint parts.
pub struct Disjoint<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: `Disjoint` only hands out `&mut` to ranges its users promise are disjoint (see
// `part`); T: Send makes moving those writes to other threads sound.
unsafe impl<T: Send> Sync for Disjoint<'_, T> {}

impl<'a, T> Disjoint<'a, T> {
    pub fn new(s: &'a mut [T]) -> Self {
        Disjoint {
            ptr: s.as_mut_ptr(),
            len: s.len(),
            _borrow: std::marker::PhantomData,
        }
    }

    /// `&mut s[start..end]`.
    ///
    /// # Safety
    /// No two live results may overlap: each item of a region must ask only for its own
    /// range, and ranges of different items must not intersect.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn part(&self, start: usize, end: usize) -> &mut [T] {
        assert!(
            start <= end && end <= self.len,
            "Disjoint::part out of range"
        );
        // SAFETY: in bounds (checked above) and, by the caller's promise, not aliased.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), end - start) }
    }
}

impl Disjoint<'_, f32> {
    /// `s[start..end]` as a gemm's output, for a gemm that writes only some of its elements
    /// (rows `r0..r1` of each token row of a `[n × n_out]` output) while other items write the
    /// rest: no `&mut` slice over the span is made.
    ///
    /// # Safety
    /// The elements the gemm writes through the result must be written, and read, by no other
    /// live item.
    pub unsafe fn gemm_out(&self, start: usize, end: usize) -> crate::kernels::GemmOut<'_> {
        assert!(
            start <= end && end <= self.len,
            "Disjoint::gemm_out out of range"
        );
        // SAFETY: in bounds (checked above); the caller promises its writes are its own.
        unsafe { crate::kernels::GemmOut::from_raw(self.ptr.add(start), end - start) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` items on `pool`, item `i` adding `add(i)` to `to`.
    fn add_up(
        pool: &Pool,
        n: usize,
        to: &AtomicUsize,
        add: impl Fn(usize) -> usize + Sync,
    ) -> crate::Result<()> {
        pool.run(n, |i| {
            to.fetch_add(add(i), Relaxed);
            Ok(())
        })
    }

    #[test]
    fn every_item_once() {
        for n in [1, 2, 3, 4] {
            let pool = Pool::new(n);
            for items in [0, 1, 2, 7, 100] {
                let hits: Vec<AtomicUsize> = (0..items).map(|_| AtomicUsize::new(0)).collect();
                pool.run(items, |i| {
                    hits[i].fetch_add(1, Relaxed);
                    Ok(())
                })
                .unwrap();
                assert!(
                    hits.iter().all(|h| h.load(Relaxed) == 1),
                    "n={n} items={items}"
                );
            }
        }
    }

    #[test]
    fn first_error_returned_and_nested_runs_alone() {
        let pool = Pool::new(2);
        let r = pool.run(10, |i| {
            if i == 3 {
                Err(Error::Input("item 3".into()))
            } else {
                Ok(())
            }
        });
        assert!(matches!(r, Err(Error::Input(m)) if m == "item 3"));
        let total = AtomicUsize::new(0);
        pool.run(4, |_| add_up(&pool, 3, &total, |_| 1)).unwrap();
        assert_eq!(total.load(Relaxed), 12);
    }

    #[test]
    fn region_published_before_the_workers_start() {
        for _ in 0..50 {
            let pool = Pool::new(4);
            let count = AtomicUsize::new(0);
            add_up(&pool, 8, &count, |_| 1).unwrap();
            assert_eq!(count.load(Relaxed), 8);
        }
    }

    #[test]
    fn workers_park_and_wake() {
        let pool = Pool::new(3);
        let sum = AtomicUsize::new(0);
        for round in 0..3 {
            std::thread::sleep(SPIN * 4);
            add_up(&pool, 64, &sum, |i| i).unwrap();
            assert_eq!(sum.load(Relaxed), (round + 1) * 64 * 63 / 2);
        }
    }

    #[test]
    fn trace_reports_the_call_site() {
        let pool = Pool::new(2);
        trace::set_enabled(true);
        let _ = trace::report();
        let count = AtomicUsize::new(0);
        let add = |_| {
            count.fetch_add(1, Relaxed);
            Ok(())
        };
        let line = line!() + 2;
        for _ in 0..3 {
            pool.run(4, add).unwrap();
        }
        trace::set_enabled(false);
        let report = trace::report().expect("regions were recorded");
        let row = format!("| src/ops/pool.rs:{line} | 3 |");
        assert!(report.contains(&row), "{row} not in\n{report}");
        assert_eq!(count.load(Relaxed), 12);
    }

    #[test]
    fn disjoint_parts() {
        let pool = Pool::new(2);
        let mut v = vec![0usize; 1000];
        let d = Disjoint::new(&mut v);
        pool.run(10, |i| {
            // SAFETY: item i owns [100 i, 100 i + 100).
            let part = unsafe { d.part(i * 100, i * 100 + 100) };
            part.iter_mut().for_each(|x| *x = i);
            Ok(())
        })
        .unwrap();
        assert!(v.iter().enumerate().all(|(j, &x)| x == j / 100));
    }
}
