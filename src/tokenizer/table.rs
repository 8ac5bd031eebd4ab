//! An immutable string -> index table: all strings in one arena, an open-addressing index of
//! `u32`s. The vocab has 262,144 tokens (and Gemma 4 as many merges); a `HashMap<String, u32>`
//! would allocate each key separately and took most of the load time.

/// Strings by index, and index by string.
#[derive(Debug, Default)]
pub(crate) struct StrTable {
    arena: String,
    /// `ends[i]` is where string `i` ends in the arena (it starts at `ends[i - 1]`, or 0).
    ends: Vec<u32>,
    /// Open addressing, linear probing: `index + 1`, 0 = empty. Power-of-two length.
    slots: Vec<u32>,
}

#[inline]
fn hash(s: &[u8]) -> u64 {
    // FxHash-style word loop, then splitmix64's finaliser so that the low bits (the slot) mix.
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = s.len() as u64;
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap());
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

impl StrTable {
    /// Builds the table. With `unique`, returns `Err((first, second))` for the first repeated
    /// string; without, a repeated string keeps finding its first index.
    pub(crate) fn build<'a, I>(items: I, unique: bool) -> Result<StrTable, (u32, u32)>
    where
        I: IntoIterator<Item = &'a str>,
        I::IntoIter: Clone,
    {
        let it = items.into_iter();
        let (mut n, mut bytes) = (0usize, 0usize);
        for s in it.clone() {
            n += 1;
            bytes += s.len();
        }
        let mut t = StrTable {
            arena: String::with_capacity(bytes),
            ends: Vec::with_capacity(n),
            slots: vec![0; (2 * n).next_power_of_two().max(16)],
        };
        let mask = t.slots.len() - 1;
        for s in it {
            let id = t.ends.len() as u32;
            t.arena.push_str(s);
            t.ends.push(t.arena.len() as u32);
            let mut k = hash(s.as_bytes()) as usize & mask;
            loop {
                let slot = t.slots[k];
                if slot == 0 {
                    t.slots[k] = id + 1;
                    break;
                }
                if t.get(slot - 1) == s {
                    if unique {
                        return Err((slot - 1, id));
                    }
                    break;
                }
                k = (k + 1) & mask;
            }
        }
        Ok(t)
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    #[inline]
    pub(crate) fn get(&self, i: u32) -> &str {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.arena[start..self.ends[i] as usize]
    }

    #[inline]
    pub(crate) fn find(&self, s: &str) -> Option<u32> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut k = hash(s.as_bytes()) as usize & mask;
        loop {
            let slot = self.slots[k];
            if slot == 0 {
                return None;
            }
            if self.get(slot - 1) == s {
                return Some(slot - 1);
            }
            k = (k + 1) & mask;
        }
    }
}
