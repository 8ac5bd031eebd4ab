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

/// Asks the kernel to start reading `[offset, offset + len)` now. memmap2 widens the range to
/// whole pages (expert slices are not page aligned).
pub fn will_need(mmap: &Mmap, offset: usize, len: usize) {
    if let Err(e) = mmap.advise_range(Advice::WillNeed, offset, len) {
        warn_once(&format!("madvise(WILLNEED) failed: {e}"));
    }
}

fn warn_once(msg: &str) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        eprintln!("lode: warning: {msg} (paging hints disabled)");
    }
}
