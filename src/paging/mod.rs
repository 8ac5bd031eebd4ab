//! (being written)

pub mod index;
