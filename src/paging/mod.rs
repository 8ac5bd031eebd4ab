//! Expert residency: which routed experts are in memory, and how they get there.
//! Knows byte ranges of the stacked `*_exps` tensors, not router math or architectures: the
//! model routes, the pager serves what it is asked for.

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
