//! Expert residency: which routed experts are in memory, and how they get there.
//! Knows byte ranges of the stacked `*_exps` tensors, not router math or architectures: the
//! model routes, the pager serves what it is asked for.

/// `since` and `add` for a struct of cumulative stats: `counts` are subtracted and summed,
/// `levels` (sizes, settings) are the later snapshot's.
macro_rules! interval_stats {
    ($T:ident { counts: $($count:ident),+; levels: $($level:ident),+; }) => {
        impl $T {
            /// What happened between the snapshot `before` and this one.
            pub fn since(&self, before: &$T) -> $T {
                $T {
                    $($count: self.$count - before.$count,)+
                    $($level: self.$level.clone(),)+
                }
            }

            /// Adds the interval `d` (from [`since`](Self::since)) to this total.
            pub fn add(&mut self, d: &$T) {
                $(self.$count += d.$count;)+
                $(self.$level = d.$level.clone();)+
            }
        }
    };
}

pub mod arena;
pub mod budget;
pub mod cache;
pub mod index;
pub mod mmap;
pub mod pager;
pub mod policy;
pub mod sysmem;

pub use budget::{human_bytes, parse_bytes};
pub use cache::{CacheStats, ExpertCache, Extent};
pub use pager::{Budget, Held, Pager, PagingMode, PagingOptions, PagingStats};
pub use policy::{simulate, simulate_optimal, PolicyKind, SimResult};
