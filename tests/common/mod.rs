#![allow(dead_code)]
pub mod gguf_writer;
