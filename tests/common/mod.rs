#![allow(dead_code)]
pub mod npy;
