//! Metadata values as stored in GGUF, and typed access to them.

use std::collections::HashMap;
use std::fmt;

use crate::{Error, Result};

/// One metadata value. Arrays keep their element type so that a 262,144-entry token table is
/// one `Vec<String>`, not a quarter of a million boxed values.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Array),
}

/// A typed array. Arrays of arrays are allowed by the format (nesting depth is capped on read).
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<Array>),
}

/// GGUF value type ids (`gguf_type` in ggml).
pub mod type_id {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

impl Value {
    /// The name the `gguf` Python package uses for this type (`UINT32`, `STRING`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "UINT8",
            Value::I8(_) => "INT8",
            Value::U16(_) => "UINT16",
            Value::I16(_) => "INT16",
            Value::U32(_) => "UINT32",
            Value::I32(_) => "INT32",
            Value::U64(_) => "UINT64",
            Value::I64(_) => "INT64",
            Value::F32(_) => "FLOAT32",
            Value::F64(_) => "FLOAT64",
            Value::Bool(_) => "BOOL",
            Value::String(_) => "STRING",
            Value::Array(_) => "ARRAY",
        }
    }

    pub fn type_id(&self) -> u32 {
        match self {
            Value::U8(_) => type_id::U8,
            Value::I8(_) => type_id::I8,
            Value::U16(_) => type_id::U16,
            Value::I16(_) => type_id::I16,
            Value::U32(_) => type_id::U32,
            Value::I32(_) => type_id::I32,
            Value::U64(_) => type_id::U64,
            Value::I64(_) => type_id::I64,
            Value::F32(_) => type_id::F32,
            Value::F64(_) => type_id::F64,
            Value::Bool(_) => type_id::BOOL,
            Value::String(_) => type_id::STRING,
            Value::Array(_) => type_id::ARRAY,
        }
    }

    /// Any integer value, widened. Floats and bools are not integers.
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v as i128,
            Value::I8(v) => v as i128,
            Value::U16(v) => v as i128,
            Value::I16(v) => v as i128,
            Value::U32(v) => v as i128,
            Value::I32(v) => v as i128,
            Value::U64(v) => v as i128,
            Value::I64(v) => v as i128,
            _ => return None,
        })
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_i128().map(|v| v as f64),
        }
    }

    /// A JSON rendering (arrays in full), used by `lode inspect --json`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::U8(v) => J::from(*v),
            Value::I8(v) => J::from(*v),
            Value::U16(v) => J::from(*v),
            Value::I16(v) => J::from(*v),
            Value::U32(v) => J::from(*v),
            Value::I32(v) => J::from(*v),
            Value::U64(v) => J::from(*v),
            Value::I64(v) => J::from(*v),
            Value::F32(v) => float_json(*v as f64),
            Value::F64(v) => float_json(*v),
            Value::Bool(v) => J::from(*v),
            Value::String(s) => J::from(s.as_str()),
            Value::Array(a) => a.to_json(),
        }
    }
}

fn float_json(v: f64) -> serde_json::Value {
    // JSON has no NaN/inf; a file may still hold them.
    serde_json::Number::from_f64(v)
        .map(serde_json::Value::Number)
        .unwrap_or_else(|| serde_json::Value::String(v.to_string()))
}

impl Array {
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::F64(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
            Array::Array(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element type name as the `gguf` Python package prints it.
    pub fn elem_type_name(&self) -> &'static str {
        match self {
            Array::U8(_) => "UINT8",
            Array::I8(_) => "INT8",
            Array::U16(_) => "UINT16",
            Array::I16(_) => "INT16",
            Array::U32(_) => "UINT32",
            Array::I32(_) => "INT32",
            Array::U64(_) => "UINT64",
            Array::I64(_) => "INT64",
            Array::F32(_) => "FLOAT32",
            Array::F64(_) => "FLOAT64",
            Array::Bool(_) => "BOOL",
            Array::String(_) => "STRING",
            Array::Array(_) => "ARRAY",
        }
    }

    pub fn elem_type_id(&self) -> u32 {
        match self {
            Array::U8(_) => type_id::U8,
            Array::I8(_) => type_id::I8,
            Array::U16(_) => type_id::U16,
            Array::I16(_) => type_id::I16,
            Array::U32(_) => type_id::U32,
            Array::I32(_) => type_id::I32,
            Array::U64(_) => type_id::U64,
            Array::I64(_) => type_id::I64,
            Array::F32(_) => type_id::F32,
            Array::F64(_) => type_id::F64,
            Array::Bool(_) => type_id::BOOL,
            Array::String(_) => type_id::STRING,
            Array::Array(_) => type_id::ARRAY,
        }
    }

    /// Integer elements widened, or `None` for non-integer arrays.
    pub fn to_i128_vec(&self) -> Option<Vec<i128>> {
        Some(match self {
            Array::U8(v) => v.iter().map(|&x| x as i128).collect(),
            Array::I8(v) => v.iter().map(|&x| x as i128).collect(),
            Array::U16(v) => v.iter().map(|&x| x as i128).collect(),
            Array::I16(v) => v.iter().map(|&x| x as i128).collect(),
            Array::U32(v) => v.iter().map(|&x| x as i128).collect(),
            Array::I32(v) => v.iter().map(|&x| x as i128).collect(),
            Array::U64(v) => v.iter().map(|&x| x as i128).collect(),
            Array::I64(v) => v.iter().map(|&x| x as i128).collect(),
            _ => return None,
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Array::U8(v) => J::from(v.clone()),
            Array::I8(v) => J::from(v.clone()),
            Array::U16(v) => J::from(v.clone()),
            Array::I16(v) => J::from(v.clone()),
            Array::U32(v) => J::from(v.clone()),
            Array::I32(v) => J::from(v.clone()),
            Array::U64(v) => J::from(v.clone()),
            Array::I64(v) => J::from(v.clone()),
            Array::F32(v) => J::Array(v.iter().map(|&x| float_json(x as f64)).collect()),
            Array::F64(v) => J::Array(v.iter().map(|&x| float_json(x)).collect()),
            Array::Bool(v) => J::from(v.clone()),
            Array::String(v) => J::from(v.clone()),
            Array::Array(v) => J::Array(v.iter().map(Array::to_json).collect()),
        }
    }
}

impl fmt::Display for Value {
    /// Short human form: scalars in full, arrays as `[TYPE; len]` with the first few items.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => {
                let short: String = s.chars().take(60).collect();
                if short.len() < s.len() {
                    write!(f, "{short:?}… ({} bytes)", s.len())
                } else {
                    write!(f, "{s:?}")
                }
            }
            Value::Array(a) => {
                write!(f, "[{}; {}]", a.elem_type_name(), a.len())?;
                let j = a.to_json();
                if let serde_json::Value::Array(items) = j {
                    let head: Vec<String> = items.iter().take(6).map(|v| v.to_string()).collect();
                    let more = if items.len() > 6 { ", …" } else { "" };
                    let mut s = head.join(", ");
                    if s.len() > 100 {
                        s = s.chars().take(100).collect::<String>() + "…";
                    }
                    write!(f, " [{s}{more}]")?;
                }
                Ok(())
            }
            Value::F32(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            other => write!(f, "{}", other.to_json()),
        }
    }
}

/// Metadata in file order, with typed accessors. Every accessor that fails names the key.
#[derive(Clone, Debug, Default)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
    index: HashMap<String, usize>,
}

fn type_err(key: &str, expected: &str, found: &Value) -> Error {
    let found = match found {
        Value::Array(a) => format!("an array of {} ({} items)", a.elem_type_name(), a.len()),
        v => v.type_name().to_string(),
    };
    Error::KeyType {
        key: key.to_string(),
        expected: expected.to_string(),
        found,
    }
}

/// `pub fn $name(&self, key) -> Result<$T>`: the key through `$opt`, absent an error.
macro_rules! required {
    ($($(#[$doc:meta])* $name:ident -> $T:ty = $opt:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(&self, key: &str) -> Result<$T> {
            self.$opt(key)?
                .ok_or_else(|| Error::MissingKey(key.to_string()))
        }
    )*};
}

impl Metadata {
    /// Inserts a key; a repeated key replaces nothing and returns false (the reader rejects it).
    pub fn insert(&mut self, key: String, value: Value) -> bool {
        if self.index.contains_key(&key) {
            return false;
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        true
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    fn require(&self, key: &str) -> Result<&Value> {
        self.get(key)
            .ok_or_else(|| Error::MissingKey(key.to_string()))
    }

    fn int_in<T: TryFrom<i128>>(&self, key: &str, what: &str) -> Result<Option<T>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let i = v.as_i128().ok_or_else(|| type_err(key, what, v))?;
        T::try_from(i).map(Some).map_err(|_| Error::KeyType {
            key: key.to_string(),
            expected: what.to_string(),
            found: format!("the out-of-range value {i}"),
        })
    }

    required! {
        /// An integer key of any integer type whose value fits in u32.
        u32 -> u32 = u32_opt;
        u64 -> u64 = u64_opt;
        usize -> usize = usize_opt;
        /// A float key (f32 or f64, integers accepted as well).
        f32 -> f32 = f32_opt;
        bool -> bool = bool_opt;
        str -> &str = str_opt;
    }

    pub fn u32_opt(&self, key: &str) -> Result<Option<u32>> {
        self.int_in(key, "an integer in u32 range")
    }

    fn u64_opt(&self, key: &str) -> Result<Option<u64>> {
        self.int_in(key, "an integer in u64 range")
    }

    pub fn usize_opt(&self, key: &str) -> Result<Option<usize>> {
        self.int_in(key, "a non-negative integer")
    }

    pub fn f32_opt(&self, key: &str) -> Result<Option<f32>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(|x| Some(x as f32))
                .ok_or_else(|| type_err(key, "a number", v)),
        }
    }

    pub fn bool_opt(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(type_err(key, "a bool", v)),
        }
    }

    pub fn str_opt(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(type_err(key, "a string", v)),
        }
    }

    pub fn array(&self, key: &str) -> Result<&Array> {
        match self.require(key)? {
            Value::Array(a) => Ok(a),
            v => Err(type_err(key, "an array", v)),
        }
    }

    pub fn str_array(&self, key: &str) -> Result<&[String]> {
        match self.array(key)? {
            Array::String(v) => Ok(v),
            _ => Err(type_err(key, "an array of strings", self.require(key)?)),
        }
    }

    /// An integer array of any integer element type, as i32 (token types, per-layer counts).
    pub fn i32_array(&self, key: &str) -> Result<Vec<i32>> {
        let a = self.array(key)?;
        let wide = a
            .to_i128_vec()
            .ok_or_else(|| type_err(key, "an array of integers", self.require(key).unwrap()))?;
        wide.into_iter()
            .map(|x| {
                i32::try_from(x).map_err(|_| Error::KeyType {
                    key: key.to_string(),
                    expected: "integers in i32 range".into(),
                    found: format!("the value {x}"),
                })
            })
            .collect()
    }

    /// A per-layer count given either as one integer (same for every layer) or as an integer
    /// array of exactly `n_layer` items. `None` when the key is absent.
    pub fn usize_per_layer(&self, key: &str, n_layer: usize) -> Result<Option<Vec<usize>>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        if let Value::Array(a) = v {
            let wide = a
                .to_i128_vec()
                .ok_or_else(|| type_err(key, "an integer or an array of integers", v))?;
            if wide.len() != n_layer {
                return Err(Error::BadConfig(format!(
                    "`{key}` has {} items for {n_layer} layers",
                    wide.len()
                )));
            }
            return wide
                .into_iter()
                .map(|x| {
                    usize::try_from(x).map_err(|_| {
                        Error::BadConfig(format!("`{key}` holds the negative value {x}"))
                    })
                })
                .collect::<Result<Vec<_>>>()
                .map(Some);
        }
        let one: usize = self.usize(key)?;
        Ok(Some(vec![one; n_layer]))
    }

    /// A per-layer flag given as a bool array of `n_layer` items, or a single bool.
    pub fn bool_per_layer(&self, key: &str, n_layer: usize) -> Result<Option<Vec<bool>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(vec![*b; n_layer])),
            Some(Value::Array(Array::Bool(v))) if v.len() == n_layer => Ok(Some(v.clone())),
            Some(Value::Array(Array::Bool(v))) => Err(Error::BadConfig(format!(
                "`{key}` has {} items for {n_layer} layers",
                v.len()
            ))),
            Some(v) => Err(type_err(key, "a bool or an array of bools", v)),
        }
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<&str> {
        self.str("general.architecture")
    }
}
