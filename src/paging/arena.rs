//! Expert buffers of the `cache` mode, carved from large anonymous mappings that ask for 2 MiB
//! pages (`MADV_HUGEPAGE` on Linux).
//!
//! One heap allocation per expert (a few MB each) gave glibc one `mmap` per buffer: 4 KiB pages
//! and no 2 MiB range inside most buffers, so every expert matrix paid a page walk per 4 KiB
//! it streamed. Here buffers are bump-allocated one after another in chunks of [`CHUNK`]
//! bytes aligned to 2 MiB; the cache recycles freed buffers by size (it never returns one to
//! the arena), and a chunk is unmapped when its last buffer is dropped.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;

use memmap2::MmapMut;

/// Bytes of one chunk (a bigger buffer gets a chunk of its own). The unused tail of a chunk is
/// address space, not memory: its pages are never touched.
const CHUNK: usize = 256 << 20;
/// Alignment of a chunk's first buffer (the 2 MiB page size) and of every buffer (a line).
const HUGE: usize = 2 << 20;
const LINE: usize = 64;

/// One anonymous mapping; the buffers carved from it keep it alive.
struct Chunk {
    _map: MmapMut,
}

/// Hands out expert buffers from the current chunk, mapping a new one when it is full.
#[derive(Default)]
pub struct Arena {
    current: Option<Carving>,
}

/// The chunk being carved: its first byte at the 2 MiB boundary, the bytes from there, and how
/// many of them are handed out.
struct Carving {
    chunk: Arc<Chunk>,
    base: NonNull<u8>,
    cap: usize,
    used: usize,
}

// SAFETY: `base` points into the chunk's mapping, which the `Arc` beside it keeps alive; the
// arena only passes it out as the start of new, disjoint buffers.
unsafe impl Send for Carving {}

impl Arena {
    /// A zeroed buffer of `len` bytes (fresh anonymous pages read as zero).
    pub fn alloc(&mut self, len: usize) -> std::io::Result<ExpertBuf> {
        let need = len.max(1).next_multiple_of(LINE);
        let c = match &mut self.current {
            Some(c) if c.cap - c.used >= need => c,
            slot => slot.insert(new_chunk(need.max(CHUNK))?),
        };
        // SAFETY: `used + need <= cap`, and `base..base + cap` lies inside the chunk's mapping.
        let ptr = unsafe { NonNull::new_unchecked(c.base.as_ptr().add(c.used)) };
        c.used += need;
        Ok(ExpertBuf {
            ptr,
            len,
            _chunk: Arc::clone(&c.chunk),
        })
    }
}

/// Maps `len` bytes (plus the slack to start at a 2 MiB boundary) and asks for huge pages.
fn new_chunk(len: usize) -> std::io::Result<Carving> {
    let mut map = MmapMut::map_anon(len + HUGE)?;
    #[cfg(target_os = "linux")]
    {
        // Advice failure is harmless: the buffers then sit on 4 KiB pages.
        let _ = map.advise(memmap2::Advice::HugePage);
    }
    let start = map.as_mut_ptr();
    let skip = start.align_offset(HUGE).min(HUGE);
    // SAFETY: `skip < HUGE`, so `start + skip .. start + skip + len` is inside the mapping.
    let base = unsafe { NonNull::new_unchecked(start.add(skip)) };
    Ok(Carving {
        chunk: Arc::new(Chunk { _map: map }),
        base,
        cap: len,
        used: 0,
    })
}

/// One expert's bytes inside an arena chunk; reads and writes as a `[u8]`.
pub struct ExpertBuf {
    ptr: NonNull<u8>,
    len: usize,
    _chunk: Arc<Chunk>,
}

// SAFETY: the buffer's bytes belong to it alone (the arena never hands a range out twice) and
// live as long as `_chunk`; shared access only reads them.
unsafe impl Send for ExpertBuf {}
unsafe impl Sync for ExpertBuf {}

impl Deref for ExpertBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` is inside the chunk's mapping (kept alive by `_chunk`) and no
        // other buffer covers it; `&self` allows no writes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for ExpertBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl std::fmt::Debug for ExpertBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExpertBuf({} bytes)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_zeroed_disjoint_and_outlive_the_arena() {
        let mut arena = Arena::default();
        let mut a = arena.alloc(1000).unwrap();
        let mut b = arena.alloc(3).unwrap();
        assert_eq!((a.len(), b.len()), (1000, 3));
        assert!(a.iter().chain(b.iter()).all(|&x| x == 0));
        a.fill(7);
        b.fill(9);
        assert!(a.iter().all(|&x| x == 7) && b.iter().all(|&x| x == 9));
        // the first buffer of a chunk starts on a 2 MiB boundary, the next one on a line
        assert_eq!(a.as_ptr() as usize % HUGE, 0);
        assert_eq!(b.as_ptr() as usize - a.as_ptr() as usize, 1024);
        // a buffer bigger than a chunk gets its own; the old chunk lives on in `a` and `b`
        let big = arena.alloc(CHUNK + 1).unwrap();
        assert_eq!(big.len(), CHUNK + 1);
        assert_eq!(big.as_ptr() as usize % HUGE, 0);
        drop(arena);
        assert!(a.iter().all(|&x| x == 7) && b.iter().all(|&x| x == 9));
    }

    #[test]
    fn a_full_chunk_moves_on_to_a_new_one() {
        let mut arena = Arena::default();
        let first = arena.alloc(CHUNK - LINE).unwrap();
        let second = arena.alloc(2 * LINE).unwrap();
        let (f, s) = (first.as_ptr() as usize, second.as_ptr() as usize);
        assert!(
            s < f || s >= f + CHUNK - LINE,
            "the second buffer overlaps the first"
        );
        assert_eq!(s % HUGE, 0);
    }
}
