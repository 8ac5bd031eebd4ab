//! Byte sizes as users write them (`6GiB`, `512M`, `auto`).

use crate::{Error, Result};

/// Parses `6GiB`, `6G`, `6GB`, `512MiB`, `1.5GiB`, `123456` (bytes). Binary and decimal
/// suffixes both mean powers of 1024, as in llama.cpp and ollama: users mean "gigabytes of RAM".
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| Error::Input(format!("`{s}` is not a size (try 6GiB or 512MiB)")))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0_f64.powi(4),
        u => {
            return Err(Error::Input(format!(
                "`{s}`: unknown size unit `{u}` (use B, KiB, MiB, GiB or TiB)"
            )))
        }
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 / 2.0 {
        return Err(Error::Input(format!("`{s}` is out of range")));
    }
    Ok(bytes as u64)
}

/// Renders bytes for people, the one formatter of the tree: binary units, always two decimals
/// (`64.00 KiB`, `160.00 KiB`, `1.00 MiB`, `1.50 GiB`), plain bytes below 1 KiB (`12 B`), so a
/// column of sizes reads alike.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("6GiB").unwrap(), 6 << 30);
        assert_eq!(parse_bytes("6G").unwrap(), 6 << 30);
        assert_eq!(parse_bytes(" 512 MiB ").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("6 parsecs").is_err());
        assert!(parse_bytes("GiB").is_err());
        assert!(parse_bytes("").is_err());
        assert_eq!(human_bytes(3 << 29), "1.50 GiB");
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(64 << 10), "64.00 KiB");
        assert_eq!(human_bytes(160 << 10), "160.00 KiB");
        assert_eq!(human_bytes(1 << 20), "1.00 MiB");
    }
}
