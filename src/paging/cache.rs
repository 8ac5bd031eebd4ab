//! The `cache` residency policy: routed experts copied into anonymous buffers under a byte
//! budget, filled by `pread` on a background I/O thread, evicted by a [`Policy`]. The buffers
//! come from an [`Arena`] on 2 MiB pages.
//!
//! An expert in use is pinned by the `Arc` its user holds: eviction only takes buffers nobody
//! else references. When every resident expert is in use, the cache runs over budget for that
//! moment rather than fail (the overshoot is counted in the stats).
//!
//! Knows byte ranges, not router math: callers say which experts (dense keys) they need.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::arena::{Arena, ExpertBuf};
use super::index::FileRange;
use super::policy::{Policy, PolicyKind};
use crate::{Error, Result};

/// The file ranges that make up one expert, copied one after another into its buffer (a split
/// model's ranges say which of the cache's files holds them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extent {
    pub ranges: Vec<FileRange>,
}

impl Extent {
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|r| r.len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counters since the cache was made; `snapshot` them and subtract for per-token numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct CacheStats {
    pub acquires: u64,
    pub hits: u64,
    pub misses: u64,
    pub bytes_read: u64,
    pub io_wait_ns: u64,
    pub prefetch_issued: u64,
    /// Prefetched experts that were acquired before being evicted.
    pub prefetch_used: u64,
    pub evictions: u64,
    pub resident_bytes: u64,
    pub peak_resident_bytes: u64,
}

interval_stats!(CacheStats {
    counts: acquires, hits, misses, bytes_read, io_wait_ns, prefetch_issued, prefetch_used,
        evictions;
    levels: resident_bytes, peak_resident_bytes;
});

enum Slot {
    Absent,
    Loading {
        prefetch: bool,
    },
    Ready {
        buf: Arc<ExpertBuf>,
        prefetched_unused: bool,
    },
    Failed(String),
}

struct State {
    slots: Vec<Slot>,
    resident: Vec<usize>,
    /// Requests not yet matched by a wait, per key: such experts are never evicted.
    wanted: Vec<u32>,
    policy: Policy,
    clock: u64,
    free: HashMap<usize, Vec<ExpertBuf>>,
    arena: Arena,
    stats: CacheStats,
}

struct Inner {
    /// The model's files (one, or each split in order), as `FileRange::file` numbers them.
    files: Vec<(File, PathBuf)>,
    extents: Vec<Extent>,
    budget_bytes: u64,
    state: Mutex<State>,
    ready: Condvar,
}

/// A byte-budgeted cache of expert buffers read from the model's file (or files, when split).
pub struct ExpertCache {
    inner: Arc<Inner>,
    io: Option<Sender<usize>>,
    thread: Option<JoinHandle<()>>,
}

/// Experts handed out by [`ExpertCache::acquire`]; each buffer stays valid (and pinned) while held.
pub type Pinned = Vec<Arc<ExpertBuf>>;

impl ExpertCache {
    /// `extents[key]` says where expert `key` lives in `paths` (a range's `file` indexes them).
    pub fn new(
        paths: &[&Path],
        extents: Vec<Extent>,
        budget_bytes: u64,
        policy: PolicyKind,
    ) -> Result<ExpertCache> {
        if let Some(r) = extents
            .iter()
            .flat_map(|x| &x.ranges)
            .find(|r| r.file >= paths.len())
        {
            return Err(Error::Input(format!(
                "expert range in file {} of a model with {} files",
                r.file,
                paths.len()
            )));
        }
        let mut files = Vec::with_capacity(paths.len());
        for &path in paths {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            #[cfg(target_os = "macos")]
            uncached_reads(&file);
            files.push((file, path.to_path_buf()));
        }
        let n = extents.len();
        let inner = Arc::new(Inner {
            files,
            extents,
            budget_bytes,
            state: Mutex::new(State {
                slots: (0..n).map(|_| Slot::Absent).collect(),
                resident: Vec::new(),
                wanted: vec![0; n],
                policy: Policy::new(policy, n),
                clock: 0,
                free: HashMap::new(),
                arena: Arena::default(),
                stats: CacheStats::default(),
            }),
            ready: Condvar::new(),
        });
        let (tx, rx) = channel();
        let worker = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("lode-expert-io".into())
            .spawn(move || io_loop(worker, rx))
            .map_err(|e| Error::Input(format!("starting the expert I/O thread: {e}")))?;
        Ok(ExpertCache {
            inner,
            io: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn budget_bytes(&self) -> u64 {
        self.inner.budget_bytes
    }

    pub fn n_keys(&self) -> usize {
        self.inner.extents.len()
    }

    /// Advances the policy clock (call once per token).
    pub fn tick(&self) {
        self.inner.lock().clock += 1;
    }

    pub fn stats(&self) -> CacheStats {
        self.inner.lock().stats
    }

    /// Starts loading `keys` without waiting (router look-ahead).
    pub fn prefetch(&self, keys: &[usize]) {
        let mut st = self.inner.lock();
        for &k in keys {
            if matches!(st.slots[k], Slot::Absent) {
                st.slots[k] = Slot::Loading { prefetch: true };
                st.stats.prefetch_issued += 1;
                self.send(&mut st, k);
            }
        }
    }

    /// Returns the buffers of `keys` (in order), reading the missing ones; blocks until all are in.
    pub fn acquire(&self, keys: &[usize]) -> Result<Pinned> {
        self.request(keys);
        keys.iter().map(|&k| self.wait(k)).collect()
    }

    /// Announces that `keys` are about to be used: counts hits and misses, starts reading the
    /// missing ones, and protects all of them from eviction until each is taken by [`wait`].
    /// Lets the caller compute with the first expert while the next ones are still being read.
    ///
    /// [`wait`]: ExpertCache::wait
    pub fn request(&self, keys: &[usize]) {
        let mut st = self.inner.lock();
        let now = st.clock;
        for &k in keys {
            st.stats.acquires += 1;
            st.wanted[k] += 1;
            st.policy.touch(k, now);
            match &mut st.slots[k] {
                Slot::Ready {
                    prefetched_unused, ..
                } => {
                    let used = std::mem::take(prefetched_unused);
                    st.stats.hits += 1;
                    if used {
                        st.stats.prefetch_used += 1;
                    }
                }
                Slot::Loading { prefetch } => {
                    // In flight from a prefetch: a late hit; the wait is counted as I/O.
                    let was = std::mem::take(prefetch);
                    st.stats.hits += 1;
                    if was {
                        st.stats.prefetch_used += 1;
                    }
                }
                Slot::Absent | Slot::Failed(_) => {
                    st.stats.misses += 1;
                    st.slots[k] = Slot::Loading { prefetch: false };
                    self.send(&mut st, k);
                }
            }
        }
    }

    /// The buffer of `key`, which a [`request`](ExpertCache::request) announced; blocks until
    /// it is read. Each request of a key is matched by one wait.
    pub fn wait(&self, key: usize) -> Result<Arc<ExpertBuf>> {
        let mut st = self.inner.lock();
        let start = Instant::now();
        let mut waited = false;
        let result = loop {
            match &st.slots[key] {
                Slot::Ready { buf, .. } => break Ok(Arc::clone(buf)),
                Slot::Failed(msg) => {
                    let msg = msg.clone();
                    st.slots[key] = Slot::Absent;
                    break Err(Error::Input(format!("expert read failed: {msg}")));
                }
                Slot::Absent => {
                    // Not requested (a caller bug) or dropped: read it now.
                    st.stats.misses += 1;
                    st.slots[key] = Slot::Loading { prefetch: false };
                    self.send(&mut st, key);
                }
                Slot::Loading { .. } => {}
            }
            waited = true;
            st = self.inner.wait_ready(st);
        };
        if waited {
            st.stats.io_wait_ns += start.elapsed().as_nanos() as u64;
        }
        st.wanted[key] = st.wanted[key].saturating_sub(1);
        result
    }

    /// Reads `keys` now, on the calling thread and as many more as the CPU has (at most 8),
    /// and returns when every one is read, or with the first failure (filling a cache that
    /// holds every expert at load). Most of a load is the kernel zeroing the arena's fresh
    /// pages (`perf`: 67 % `clear_page_erms` with one I/O thread) and copying from the page
    /// cache, per thread: a 26B-A4B `lode bench -n 32` on the 2-vCPU VM took 19.8–20.7 s with
    /// one reading thread, 12.5–13.1 s with two (docs/performance.md, 2026-12-07 20:43).
    pub fn warm_blocking(&self, keys: &[usize]) -> Result<()> {
        // the keys this call reads (absent ones); any already in flight are the I/O thread's
        let mine: Vec<usize> = {
            let mut st = self.inner.lock();
            keys.iter()
                .copied()
                .filter(|&k| {
                    let absent = matches!(st.slots[k], Slot::Absent);
                    if absent {
                        st.slots[k] = Slot::Loading { prefetch: false };
                    }
                    absent
                })
                .collect()
        };
        let next = std::sync::atomic::AtomicUsize::new(0);
        let n_threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let work = || loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(&k) = mine.get(i) else { break };
            self.inner.load(k);
        };
        std::thread::scope(|sc| {
            for _ in 1..n_threads.min(mine.len()) {
                sc.spawn(work);
            }
            work();
        });
        let mut st = self.inner.lock();
        loop {
            if let Some(&k) = keys
                .iter()
                .find(|&&k| matches!(st.slots[k], Slot::Failed(_)))
            {
                if let Slot::Failed(msg) = std::mem::replace(&mut st.slots[k], Slot::Absent) {
                    return Err(Error::Input(format!("expert read failed: {msg}")));
                }
            }
            if keys
                .iter()
                .all(|&k| matches!(st.slots[k], Slot::Ready { .. }))
            {
                return Ok(());
            }
            st = self.inner.wait_ready(st);
        }
    }

    /// Queues `key` for the I/O thread (the caller holds the state lock).
    fn send(&self, st: &mut State, key: usize) {
        if let Some(tx) = &self.io {
            // The I/O thread lives as long as the cache; a send error means it died, and the
            // waiting acquire would then time out in a loop, so record the failure instead.
            if tx.send(key).is_err() {
                st.slots[key] = Slot::Failed("I/O thread stopped".into());
            }
        }
    }
}

impl Drop for ExpertCache {
    fn drop(&mut self) {
        self.io.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the I/O thread to finish a read, at most a second (callers check again).
    fn wait_ready<'a>(&self, st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.ready
            .wait_timeout(st, Duration::from_secs(1))
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0)
    }

    /// Evicts unpinned experts until `need` more bytes fit the budget, then hands back a buffer
    /// of that size (recycled when one was freed).
    fn make_room(&self, st: &mut State, need: usize) -> std::io::Result<ExpertBuf> {
        while st.stats.resident_bytes + need as u64 > self.budget_bytes {
            let now = st.clock;
            let (slots, wanted) = (&st.slots, &st.wanted);
            let candidates = st.resident.iter().copied().filter(|&k| match &slots[k] {
                Slot::Ready { buf, .. } => Arc::strong_count(buf) == 1 && wanted[k] == 0,
                _ => false,
            });
            let Some(v) = st.policy.victim(candidates, now) else {
                break; // everything resident is in use: run over budget for now
            };
            let old = std::mem::replace(&mut st.slots[v], Slot::Absent);
            st.resident.retain(|&k| k != v);
            st.stats.evictions += 1;
            if let Slot::Ready { buf, .. } = old {
                st.stats.resident_bytes -= buf.len() as u64;
                if let Ok(b) = Arc::try_unwrap(buf) {
                    st.free.entry(b.len()).or_default().push(b);
                }
            }
        }
        match st.free.get_mut(&need).and_then(Vec::pop) {
            Some(b) => Ok(b),
            None => st.arena.alloc(need),
        }
    }

    /// Reads expert `key` if it is still wanted (`Loading`): makes room, reads outside the
    /// lock, then marks it ready (or failed) and wakes the waiters.
    fn load(&self, key: usize) {
        let need = self.extents[key].len() as usize;
        let buf = {
            let mut st = self.lock();
            if !matches!(st.slots[key], Slot::Loading { .. }) {
                return;
            }
            self.make_room(&mut st, need)
        };
        let filled = match buf {
            Ok(mut b) => self.read(key, &mut b).map(|()| b),
            Err(e) => Err(format!("expert buffer of {need} bytes: {e}")),
        };
        let mut st = self.lock();
        match filled {
            Ok(buf) => {
                let prefetch = matches!(st.slots[key], Slot::Loading { prefetch: true });
                st.stats.bytes_read += need as u64;
                st.stats.resident_bytes += need as u64;
                st.stats.peak_resident_bytes =
                    st.stats.peak_resident_bytes.max(st.stats.resident_bytes);
                st.slots[key] = Slot::Ready {
                    buf: Arc::new(buf),
                    prefetched_unused: prefetch,
                };
                st.resident.push(key);
            }
            Err(msg) => st.slots[key] = Slot::Failed(msg),
        }
        drop(st);
        self.ready.notify_all();
    }

    /// Fills `buf` with expert `key`'s ranges; a failure says which file.
    fn read(&self, key: usize, buf: &mut [u8]) -> std::result::Result<(), String> {
        let mut at = 0usize;
        for r in &self.extents[key].ranges {
            let ((file, path), len) = (&self.files[r.file], r.len as usize);
            read_at(file, &mut buf[at..at + len], r.offset)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            drop_page_cache(file, r.offset, r.len);
            at += len;
        }
        Ok(())
    }
}

fn io_loop(inner: Arc<Inner>, rx: Receiver<usize>) {
    while let Ok(key) = rx.recv() {
        inner.load(key);
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], off: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, off)
}

#[cfg(not(unix))]
fn read_at(file: &File, buf: &mut [u8], off: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    let mut done = 0;
    while done < buf.len() {
        let n = file.seek_read(&mut buf[done..], off + done as u64)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        done += n;
    }
    Ok(())
}

/// The copy in our buffer is the one we keep: drop the page-cache pages the read filled, so
/// a memory cap counts the budget and not the budget plus the same bytes again as cache.
#[cfg(target_os = "linux")]
fn drop_page_cache(file: &File, off: u64, len: u64) {
    use std::os::unix::io::AsRawFd;
    // SAFETY: posix_fadvise only reads its integer arguments; the descriptor is open for the
    // lifetime of `file`. Advice failure is harmless (the kernel keeps the pages).
    unsafe {
        libc::posix_fadvise(
            file.as_raw_fd(),
            off as i64,
            len as i64,
            libc::POSIX_FADV_DONTNEED,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn drop_page_cache(_file: &File, _off: u64, _len: u64) {}

/// macOS has no `posix_fadvise`: `F_NOCACHE` on the descriptor keeps what it reads out of the
/// buffer cache in the first place (the same end as dropping it after each read on Linux).
#[cfg(target_os = "macos")]
fn uncached_reads(file: &File) {
    use std::os::unix::io::AsRawFd;
    // SAFETY: fcntl(F_NOCACHE, 1) only sets a flag on a descriptor open for the lifetime of
    // `file`. Failure is harmless (reads are then cached as usual).
    unsafe {
        libc::fcntl(file.as_raw_fd(), libc::F_NOCACHE, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> (std::path::PathBuf, impl Drop) {
        file_named(bytes, "")
    }

    /// `file_with`, `tag` in the name (for a second file in one test).
    fn file_named(bytes: &[u8], tag: &str) -> (std::path::PathBuf, impl Drop) {
        struct Rm(std::path::PathBuf);
        impl Drop for Rm {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
        let p = std::env::temp_dir().join(format!(
            "lode-cache-test-{}-{:?}{tag}.bin",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        (p.clone(), Rm(p))
    }

    /// `len` bytes at `offset` of file 0.
    fn at(offset: u64, len: u64) -> FileRange {
        FileRange {
            file: 0,
            offset,
            len,
        }
    }

    /// A cache of `budget_bytes` over four 100-byte experts, every byte of the file `fill`.
    fn four_experts(fill: u8, budget_bytes: u64) -> (ExpertCache, impl Drop) {
        let (path, rm) = file_with(&[fill; 1000]);
        let extents: Vec<Extent> = (0..4u64)
            .map(|e| Extent {
                ranges: vec![at(e * 100, 100)],
            })
            .collect();
        let cache = ExpertCache::new(&[&path], extents, budget_bytes, PolicyKind::DEFAULT).unwrap();
        (cache, rm)
    }

    #[test]
    fn reads_extents_and_evicts_under_budget() {
        let data: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        let (path, _rm) = file_with(&data);
        // 8 experts of 100 bytes, each made of two ranges 1000 bytes apart.
        let extents: Vec<Extent> = (0..8u64)
            .map(|e| Extent {
                ranges: vec![at(e * 50, 50), at(2000 + e * 50, 50)],
            })
            .collect();
        let cache = ExpertCache::new(&[&path], extents.clone(), 300, PolicyKind::Lru).unwrap();
        for round in 0..3 {
            for e in 0..8usize {
                let got = cache.acquire(&[e]).unwrap();
                let mut want = data[e * 50..e * 50 + 50].to_vec();
                want.extend_from_slice(&data[2000 + e * 50..2000 + e * 50 + 50]);
                assert_eq!(&got[0][..], &want[..], "round {round} expert {e}");
                cache.tick();
            }
        }
        let s = cache.stats();
        assert_eq!(s.acquires, 24);
        assert_eq!(
            s.misses, 24,
            "a cyclic scan larger than the cache always misses under LRU"
        );
        assert!(s.resident_bytes <= 300);
        assert!(s.evictions >= 21);
        assert_eq!(s.bytes_read, 24 * 100);
    }

    #[test]
    fn pinned_experts_are_not_evicted() {
        let (cache, _rm) = four_experts(7, 200);
        let held = cache.acquire(&[0, 1]).unwrap();
        // Budget is full of pinned experts: the next one is read anyway, over budget.
        let more = cache.acquire(&[2]).unwrap();
        assert_eq!(more[0].len(), 100);
        assert_eq!(cache.stats().evictions, 0);
        drop(held);
        drop(more);
        cache.acquire(&[3]).unwrap();
        let s = cache.stats();
        assert!(s.evictions >= 1);
        assert!(s.resident_bytes <= 200);
        // Hits after the fact.
        cache.acquire(&[3]).unwrap();
        assert_eq!(cache.stats().hits, 1);
    }

    #[test]
    fn prefetch_counts_as_used() {
        let (cache, _rm) = four_experts(1, 1000);
        cache.prefetch(&[1, 2]);
        cache.acquire(&[1]).unwrap();
        let s = cache.stats();
        assert_eq!(s.prefetch_issued, 2);
        assert_eq!(s.prefetch_used, 1);
        assert_eq!(s.misses, 0);
    }

    #[test]
    fn read_past_end_is_an_error() {
        let (path, _rm) = file_with(&[0u8; 10]);
        let cache = ExpertCache::new(
            &[&path],
            vec![Extent {
                ranges: vec![at(5, 100)],
            }],
            1000,
            PolicyKind::Lru,
        )
        .unwrap();
        let err = cache.acquire(&[0]).unwrap_err().to_string();
        assert!(err.contains("expert read failed"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn experts_of_a_split_model_read_from_each_file() {
        // Two files of different bytes; expert e: 40 bytes of file 0, then 60 of file 1 (a
        // split model can put an expert's gate and up in one file and its down in the next).
        let a: Vec<u8> = (0..400u32).map(|i| (i % 251) as u8).collect();
        let b: Vec<u8> = (0..600u32).map(|i| (i % 239) as u8 ^ 0x5a).collect();
        let (pa, _ra) = file_named(&a, "-a");
        let (pb, _rb) = file_named(&b, "-b");
        let extents: Vec<Extent> = (0..4u64)
            .map(|e| Extent {
                ranges: vec![
                    at(e * 40, 40),
                    FileRange {
                        file: 1,
                        offset: 100 + e * 60,
                        len: 60,
                    },
                ],
            })
            .collect();
        let cache = ExpertCache::new(&[&pa, &pb], extents, 1000, PolicyKind::Lru).unwrap();
        for e in 0..4usize {
            let got = cache.acquire(&[e]).unwrap();
            let mut want = a[e * 40..e * 40 + 40].to_vec();
            want.extend_from_slice(&b[100 + e * 60..160 + e * 60]);
            assert_eq!(&got[0][..], &want[..], "expert {e}");
        }
        // A range past the end of the second file fails naming that file.
        let cache = ExpertCache::new(
            &[&pa, &pb],
            vec![Extent {
                ranges: vec![FileRange {
                    file: 1,
                    offset: 590,
                    len: 20,
                }],
            }],
            1000,
            PolicyKind::Lru,
        )
        .unwrap();
        let err = cache.acquire(&[0]).unwrap_err().to_string();
        assert!(err.contains(&pb.display().to_string()), "{err}");
        // A range in a file the model does not have is refused up front.
        let bad = vec![Extent {
            ranges: vec![FileRange {
                file: 2,
                offset: 0,
                len: 1,
            }],
        }];
        assert!(ExpertCache::new(&[&pa, &pb], bad, 1000, PolicyKind::Lru).is_err());
    }
}
