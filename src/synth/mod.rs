//! `lode synth`: synthetic GGUFs with the exact tensor names, shapes, metadata and type mix
//! of a real model, filled with random but valid quantized blocks.

pub mod blocks;
pub mod vocab;
pub mod weights;
pub mod write;

pub use write::{synthesize, write_model, Preset, SynthReport};
