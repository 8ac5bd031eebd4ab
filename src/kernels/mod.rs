//! CPU kernels: FFI to the C files in csrc/, run-time ISA detection, and the
//! [`KernelTable`] dispatch point with safe, length-checked wrappers.
//!
//! Owns `extern "C"` declarations, `Isa` and `KernelTable`. Knows nothing of tensors,
//! threads or models: every kernel is single-threaded and works on the rows it is given;
//! `ops` splits rows across threads.

mod dispatch;
pub mod ffi;

pub use dispatch::{dequantize_row_scalar, GemmOut, Isa, KernelTable};
