//! A tiny `.npy` reader and writer for little-endian float arrays (format versions 1-3), enough
//! for logits dumps and for reading oracle fixtures made by numpy.
//! Format: <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>.

use std::path::Path;

use crate::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";

/// A C-order array read from a `.npy` file, converted to f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The bytes of a version 1.0 `.npy` file holding `data` as `<f4` with `shape` (C order).
pub fn to_bytes_f32(shape: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    let n: usize = shape.iter().product();
    if n != data.len() {
        return Err(Error::Input(format!(
            "npy: shape {shape:?} holds {n} values, got {}",
            data.len()
        )));
    }
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // Pad with spaces so the data starts on a 64-byte boundary; the header ends with '\n'.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let hlen = u16::try_from(header.len())
        .map_err(|_| Error::Input(format!("npy: shape {shape:?} makes too long a header")))?;
    let mut out = Vec::with_capacity(10 + header.len() + 4 * data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&hlen.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// Writes a `<f4` `.npy` file through [`crate::output`]: to a temporary file renamed over
/// `path` (a reader never sees half a file), or in place for a device, FIFO or `/dev/stdout`.
pub fn write_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<()> {
    let bytes = to_bytes_f32(shape, data)?;
    crate::output::write(path, &bytes, &[])
}

/// Reads a little-endian `<f4` or `<f8` C-order `.npy` file as f32.
pub fn read_f32(path: impl AsRef<Path>) -> Result<Array> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    from_bytes_f32(&bytes).map_err(|e| match e {
        Error::Input(m) => Error::Input(format!("{}: {m}", path.display())),
        e => e,
    })
}

pub fn from_bytes_f32(bytes: &[u8]) -> Result<Array> {
    let bad = |what: &str| Error::Input(format!("npy: {what}"));
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("not a .npy file (bad magic)"));
    }
    let (hlen, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(&format!("unsupported format version {v}"))),
    };
    let header = bytes
        .get(start..start.saturating_add(hlen))
        .ok_or_else(|| bad("truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not UTF-8"))?;
    let descr = dict_value(header, "descr").ok_or_else(|| bad("header has no 'descr'"))?;
    let width = match descr.trim_matches(|c| c == '\'' || c == '"') {
        "<f4" => 4,
        "<f8" => 8,
        d => return Err(bad(&format!("dtype {d} is not <f4 or <f8"))),
    };
    if dict_value(header, "fortran_order").map(str::trim) != Some("False") {
        return Err(bad("fortran_order arrays are not supported"));
    }
    let shape_s = dict_value(header, "shape").ok_or_else(|| bad("header has no 'shape'"))?;
    let shape = shape_s
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad(&format!("bad shape {shape_s}")))
        })
        .collect::<Result<Vec<usize>>>()?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("shape overflows"))?;
    let body = &bytes[start + hlen..];
    if body.len() != n.checked_mul(width).ok_or_else(|| bad("shape overflows"))? {
        return Err(bad(&format!(
            "shape {shape:?} needs {} bytes of data, file has {}",
            n * width,
            body.len()
        )));
    }
    let data = if width == 4 {
        body.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        body.chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
            .collect()
    };
    Ok(Array { shape, data })
}

/// The raw text of `'key': value` in numpy's header dict (value ends at the next top-level
/// comma; the shape tuple's parentheses are honoured).
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat_single = format!("'{key}':");
    let pat_double = format!("\"{key}\":");
    let at = header
        .find(&pat_single)
        .map(|i| i + pat_single.len())
        .or_else(|| header.find(&pat_double).map(|i| i + pat_double.len()))?;
    let rest = &header[at..];
    let mut depth = 0;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_matches_numpy() {
        // numpy 1.x/2.x `np.save` of np.zeros((2, 3), np.float32) writes exactly this header.
        let b = to_bytes_f32(&[2, 3], &[0.0; 6]).unwrap();
        let want = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let h = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        assert_eq!(h.trim_end(), want);
        assert!(h.ends_with('\n'));
        assert_eq!(b.len(), 10 + hlen + 24);
    }

    #[test]
    fn round_trip_and_one_dim() {
        let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 1.0).collect();
        let a = from_bytes_f32(&to_bytes_f32(&[3, 4], &data).unwrap()).unwrap();
        assert_eq!(a.shape, [3, 4]);
        assert_eq!(a.data, data);
        let b = to_bytes_f32(&[5], &data[..5]).unwrap();
        assert!(String::from_utf8_lossy(&b[10..]).contains("'shape': (5,)"));
        assert_eq!(from_bytes_f32(&b).unwrap().shape, [5]);
    }

    #[test]
    fn reads_a_file_numpy_wrote() {
        // np.load of this fixture: float32 (1, 512), first values 1.4432135, -1.6001297, last 5.1396623.
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/gemma4-tiny/ref/hf_logits_s0.npy"
        );
        let a = read_f32(p).unwrap();
        assert_eq!(a.shape, [1, 512]);
        assert_eq!(a.data[0], 1.443_213_5);
        assert_eq!(a.data[1], -1.600_129_7);
        assert_eq!(a.data[511], 5.139_662_3);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(to_bytes_f32(&[2, 2], &[0.0; 3]).is_err());
        assert!(from_bytes_f32(b"not npy at all").is_err());
        let mut b = to_bytes_f32(&[2, 2], &[0.0; 4]).unwrap();
        b.truncate(b.len() - 1);
        assert!(from_bytes_f32(&b).is_err());
    }
}
