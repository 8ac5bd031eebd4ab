//! The `mmap` residency policy: experts stay in the OS page cache, steered by madvise hints.
//!
//! The stacked expert tensors are marked random-access, so a fault on one routed expert does
//! not read ahead into its unrouted neighbours; as soon as routing is known, the routed slices
//! are asked for with `WillNeed`, so their reads overlap the work before their use.

use memmap2::{Advice, Mmap};

/// Marks `[offset, offset + len)` of the mapping as random access (no readahead).
/// Advisory: a failure is reported once on stderr and otherwise ignored.
pub fn advise_random(mmap: &Mmap, offset: usize, len: usize) {
    if let Err(e) = mmap.advise_range(Advice::Random, offset, len) {
        warn_once(&format!("madvise(RANDOM) failed: {e}"));
    }
}

/// Asks for the mapping in 2 MiB pages where the kernel can (Linux: page-cache folios of
/// PMD size, mapped with one page-table entry, read 2 MiB at a time on a fault). For a file
/// that stays resident this is one fault and one TLB entry per 2 MiB instead of 512; it is the
/// opposite of [`advise_random`]. Silently nothing where unsupported.
pub fn advise_huge(mmap: &Mmap) {
    #[cfg(target_os = "linux")]
    {
        let _ = mmap.advise(Advice::HugePage);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = mmap;
}

/// Asks the kernel to start reading `[offset, offset + len)` now. memmap2 widens the range to
/// whole pages (expert slices are not page aligned).
pub fn will_need(mmap: &Mmap, offset: usize, len: usize) {
    if let Err(e) = mmap.advise_range(Advice::WillNeed, offset, len) {
        warn_once(&format!("madvise(WILLNEED) failed: {e}"));
    }
}

/// [`will_need`] for the part of `[offset, offset + len)` the page cache lacks: returns the bytes
/// missing ([`missing_bytes`]) and hints only when some are. A resident range gets no hint: the
/// kernel would only walk the page cache for it again (`force_page_cache_ra`, ~2.5 % of the
/// samples of a resident 26B-A4B decode in `perf record` of `lode run`). When residency cannot
/// be read, it hints and returns `None`.
pub fn will_need_missing(mmap: &Mmap, offset: usize, len: usize) -> Option<u64> {
    let missing = missing_bytes(mmap, offset, len);
    if missing != Some(0) {
        will_need(mmap, offset, len);
    }
    missing
}

/// The process's major page faults so far (pages it waited on the disk for), or `None` where
/// that cannot be read. While it stays the same, nothing this process touched came from disk.
#[cfg(unix)]
pub fn major_faults() -> Option<u64> {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one rusage into the zeroed struct it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    // SAFETY: on success the struct was written (and it was zeroed before in any case).
    (rc == 0).then(|| unsafe { ru.assume_init() }.ru_majflt as u64)
}

#[cfg(not(unix))]
pub fn major_faults() -> Option<u64> {
    None
}

fn warn_once(msg: &str) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        eprintln!("lode: warning: {msg} (paging hints disabled)");
    }
}

/// Bytes of `[offset, offset + len)` (widened to whole pages) that are *not* in the page
/// cache: what touching the range would read from disk. `None` when the kernel cannot say.
#[cfg(unix)]
pub fn missing_bytes(mmap: &Mmap, offset: usize, len: usize) -> Option<u64> {
    // SAFETY: sysconf only reads its argument.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = usize::try_from(page).ok().filter(|&p| p > 0)?;
    if len == 0 || offset.checked_add(len)? > mmap.len() {
        return None;
    }
    let start = offset / page * page;
    let end = (offset + len).div_ceil(page) * page;
    let n_pages = (end - start) / page;
    let mut vec = vec![0u8; n_pages];
    // SAFETY: `start` is page aligned and `start..end` lies inside the live mapping (the end
    // rounds up within the mapping's last page); `vec` has one byte per page, as mincore needs.
    let rc = unsafe {
        libc::mincore(
            mmap.as_ptr().add(start) as *mut libc::c_void,
            end - start,
            vec.as_mut_ptr() as *mut _,
        )
    };
    if rc != 0 {
        return None;
    }
    Some(vec.iter().filter(|&&b| b & 1 == 0).count() as u64 * page as u64)
}

#[cfg(not(unix))]
pub fn missing_bytes(_mmap: &Mmap, _offset: usize, _len: usize) -> Option<u64> {
    None
}
