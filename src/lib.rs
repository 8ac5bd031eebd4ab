//! lode: run quantized GGUF language models on the CPU, built first for Gemma 4 26B-A4B.
//!
//! A Mixture-of-Experts model is mostly routed experts that any one token never touches.
//! lode maps the GGUF file read-only and asks the pager only for the experts the router picks.
//!
//! Module dependencies (`A ─► B`: B may use A, never the other way round):
//!
//! ```text
//! gguf ─► quant ─► kernels ─► ops ─► model ─────┐
//!  │        │                         ▲         │
//!  ├────────┴─────► paging ───────────┘         ├─► engine ─► cli, server
//!  └─► tokenizer, chat ─────────────────────────┤
//!                           sample (no deps) ───┘
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

/// `FromStr` and `Display` for a fieldless enum from one list of its spellings:
/// `spelled!(Mode { A = "a", B = "b" } else |s| error_for_unknown_s)`.
macro_rules! spelled {
    ($T:ident { $($V:ident = $name:literal),+ $(,)? } else |$s:ident| $unknown:expr) => {
        impl std::str::FromStr for $T {
            type Err = crate::Error;
            fn from_str($s: &str) -> crate::Result<$T> {
                match $s {
                    $($name => Ok($T::$V),)+
                    _ => Err($unknown),
                }
            }
        }

        impl std::fmt::Display for $T {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(match self {
                    $($T::$V => $name,)+
                })
            }
        }
    };
}

pub mod bench;
pub mod chat;
pub mod engine;
pub mod error;
pub mod gguf;
pub mod kernels;
pub mod model;
pub mod npy;
pub mod ops;
pub mod output;
pub mod paging;
pub mod quant;
pub mod sample;
pub mod server;
pub mod synth;
pub mod tokenizer;
pub mod vision;

pub use error::{Error, Result};

/// The commit this binary was built from (`git rev-parse --short HEAD` at build time;
/// `LODE_BUILD_COMMIT` outside a git checkout, else `unknown`), and its cargo profile.
pub const BUILD_COMMIT: &str = env!("LODE_BUILD_COMMIT");
pub const BUILD_PROFILE: &str = env!("LODE_BUILD_PROFILE");
