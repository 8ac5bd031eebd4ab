//! The tiny Gemma 4 oracle (tests/fixtures/gemma4-tiny) and the comparisons tests make with it.

use std::path::PathBuf;
use std::sync::Arc;

use lode::gguf::Gguf;
use serde_json::Value;

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

pub fn manifest() -> Value {
    let s = std::fs::read_to_string(fixture("gemma4-tiny/manifest.json")).unwrap();
    serde_json::from_str(&s).unwrap()
}

/// One quant variant of the tiny model (`f32`, `f16`, `q8_0`, `q4_0`, `q4_k_m`).
pub fn tiny(q: &str) -> Arc<Gguf> {
    let p = fixture(&format!("gemma4-tiny/gguf/gemma4-tiny-public-{q}.gguf"));
    Arc::new(Gguf::open(p).unwrap())
}

/// A JSON array of token ids.
pub use super::json_ids as tokens;

pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Top-1 minus top-2.
pub fn top1_margin(row: &[f32]) -> f32 {
    let top = argmax(row);
    let second = row
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != top)
        .map(|(_, &v)| v)
        .fold(f32::NEG_INFINITY, f32::max);
    row[top] - second
}

/// max |a − b|, mean |a − b|.
pub fn diff(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let mut max = 0f32;
    let mut sum = 0f64;
    for (x, y) in a.iter().zip(b) {
        let d = (x - y).abs();
        max = max.max(d);
        sum += d as f64;
    }
    (max, (sum / a.len() as f64) as f32)
}
