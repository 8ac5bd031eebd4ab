//! `--sweep KEY=VALUES`: one setting varied over a list, the rest fixed.
//!
//! VALUES is a comma list (`threads=1,2`, `depth=0,1024,4096`, `expert-budget=2GiB,6GiB`) or a
//! range `A..B`: every integer for `threads`, doubling from A up to B for `depth` and
//! `expert-budget` (`2GiB..16GiB` = 2, 4, 8, 16 GiB), since those are explored on a log scale.

use std::fmt;
use std::str::FromStr;

use crate::paging::parse_bytes;
use crate::{Error, Result};

/// The setting a sweep varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepKey {
    Threads,
    Depth,
    ExpertBudget,
}

impl SweepKey {
    /// What is swept, in words (plot titles).
    pub fn label(self) -> &'static str {
        match self {
            SweepKey::Threads => "threads",
            SweepKey::Depth => "context depth",
            SweepKey::ExpertBudget => "expert budget",
        }
    }
}

impl fmt::Display for SweepKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SweepKey::Threads => "threads",
            SweepKey::Depth => "depth",
            SweepKey::ExpertBudget => "expert-budget",
        })
    }
}

/// A parsed `--sweep`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sweep {
    pub key: SweepKey,
    /// Threads, tokens or bytes, in the order given.
    pub values: Vec<u64>,
}

/// At most this many values, so a typo in a range cannot start a day-long run.
const MAX_VALUES: usize = 64;

impl FromStr for Sweep {
    type Err = Error;

    fn from_str(s: &str) -> Result<Sweep> {
        let bad = |why: &str| Error::Input(format!("--sweep `{s}`: {why}"));
        let (key, values) = s
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUES, e.g. threads=1,2"))?;
        let key = match key.trim() {
            "threads" | "t" => SweepKey::Threads,
            "depth" | "d" => SweepKey::Depth,
            "expert-budget" | "expert_budget" => SweepKey::ExpertBudget,
            k => {
                return Err(bad(&format!(
                    "unknown key `{k}` (threads, depth or expert-budget)"
                )))
            }
        };
        let one = |v: &str| -> Result<u64> {
            match key {
                SweepKey::ExpertBudget => parse_bytes(v),
                _ => v
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| bad(&format!("`{v}` is not a whole number"))),
            }
        };
        let values = if let Some((a, b)) = values.split_once("..") {
            let (a, b) = (one(a)?, one(b)?);
            if a > b {
                return Err(bad("range start is above its end"));
            }
            let mut out = Vec::new();
            if key == SweepKey::Threads {
                out.extend(a..=b.min(a + MAX_VALUES as u64));
            } else {
                if a == 0 {
                    return Err(bad(
                        "a doubling range cannot start at 0; list the values instead \
                         (depth=0,1024,4096)",
                    ));
                }
                let mut v = a;
                while v <= b && out.len() <= MAX_VALUES {
                    out.push(v);
                    v = v.saturating_mul(2);
                }
            }
            out
        } else {
            values.split(',').map(one).collect::<Result<Vec<u64>>>()?
        };
        if values.is_empty() {
            return Err(bad("no values"));
        }
        if values.len() > MAX_VALUES {
            return Err(bad(&format!("more than {MAX_VALUES} values")));
        }
        if key == SweepKey::Threads && values.contains(&0) {
            return Err(bad("threads must be at least 1"));
        }
        Ok(Sweep { key, values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges() {
        let s: Sweep = "threads=1,2".parse().unwrap();
        assert_eq!((s.key, s.values), (SweepKey::Threads, vec![1, 2]));
        let s: Sweep = "threads=1..4".parse().unwrap();
        assert_eq!(s.values, [1, 2, 3, 4]);
        let s: Sweep = "depth=0,1024,4096".parse().unwrap();
        assert_eq!((s.key, s.values), (SweepKey::Depth, vec![0, 1024, 4096]));
        let s: Sweep = "expert-budget=2GiB..16GiB".parse().unwrap();
        let g = 1u64 << 30;
        assert_eq!(s.key, SweepKey::ExpertBudget);
        assert_eq!(s.values, [2 * g, 4 * g, 8 * g, 16 * g]);
    }

    #[test]
    fn bad_sweeps_are_errors() {
        for s in [
            "threads",
            "speed=1,2",
            "threads=0,1",
            "threads=a",
            "depth=0..4096",
            "depth=8..2",
            "expert-budget=2XB",
            "threads=1..1000000",
        ] {
            assert!(s.parse::<Sweep>().is_err(), "{s}");
        }
    }
}
