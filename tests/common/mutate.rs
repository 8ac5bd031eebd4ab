//! Metadata mutations of the tiny Gemma 4 file, run past parsing: open, tokenizer, chat
//! template, parameter report, KV estimate, `model::load` and one forward token. Used by
//! tests/fuzz_metadata.rs (a deterministic loop, in CI) and by fuzz/fuzz_targets/
//! model_metadata.rs (libFuzzer choosing the mutations). Every step may fail with an `Err`;
//! none may panic, hang or allocate without bound (the drivers cap single allocations).
//!
//! Only metadata is mutated; the tensors are the fixture's, so anything that gets as far as a
//! forward pass runs on real weights.

use std::path::Path;
use std::sync::Arc;

use lode::gguf::{Array, Gguf, GgufWriter, Metadata, TensorDesc, Value, DEFAULT_ALIGNMENT};

/// The unmutated model: metadata and tensors (type, shape, bytes), in file order.
pub struct Base {
    pub kv: Vec<(String, Value)>,
    pub tensors: Vec<(TensorDesc, Vec<u8>)>,
}

impl Base {
    pub fn load(path: &Path) -> Base {
        let g = Gguf::open(path).expect("opening the fixture");
        let kv = g
            .metadata()
            .iter()
            .filter(|(k, _)| *k != "general.alignment")
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let tensors = g
            .tensors()
            .iter()
            .map(|t| {
                let d = TensorDesc::new(t.name.clone(), t.ty, &t.dims).unwrap();
                (d, g.tensor_data(t).to_vec())
            })
            .collect();
        Base { kv, tensors }
    }
}

/// A source of choices: libFuzzer's input bytes or a seeded generator.
pub trait Source {
    fn next(&mut self) -> u64;
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// SplitMix64: the loop driver's deterministic stream.
pub struct Seeded(pub u64);

impl Source for Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Fuzzer bytes, 8 at a time; zeros once they run out.
pub struct Bytes<'a>(pub &'a [u8]);

impl Source for Bytes<'_> {
    fn next(&mut self) -> u64 {
        let n = self.0.len().min(8);
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        u64::from_le_bytes(b)
    }
}

/// Integers that break size arithmetic.
const INTS: [i128; 26] = [
    0,
    1,
    2,
    3,
    4,
    5,
    8,
    31,
    32,
    64,
    255,
    256,
    4095,
    4096,
    65536,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    0x1_0000_0000,
    1 << 40,
    1 << 62,
    i64::MAX as i128,
    u64::MAX as i128,
    -1,
    -(1 << 31),
    i64::MIN as i128,
];

const FLOATS: [f64; 10] = [
    0.0,
    -0.0,
    1e-30,
    0.5,
    -1.0,
    1e30,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    1e6,
];

/// Keys the fixture lacks that the loaders read.
const EXTRA_KEYS: [&str; 12] = [
    "gemma4.rope.dimension_count",
    "gemma4.rope.dimension_count_swa",
    "gemma4.attention.value_length",
    "gemma4.attention.value_length_swa",
    "gemma4.embedding_length_per_layer_input",
    "gemma4.attention.shared_kv_layers",
    "gemma4.rope.freq_base_swa",
    "gemma4.final_logit_softcapping",
    "split.count",
    "split.no",
    "split.tensors.count",
    "tokenizer.ggml.add_bos_token",
];

/// Chat templates that loop, recurse or fail.
const TEMPLATES: [&str; 5] = [
    "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}x{% endfor %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "{{ raise_exception('no') }}",
    "{% for m in messages %}{{ m.content }}{% endfor %}",
    "{{ messages[0]['content'] | tojson(indent=1000000) }}",
];

fn int_value(src: &mut dyn Source, like: &Value) -> Value {
    let x = match src.below(4) {
        0 => (src.next() as i64) as i128,
        1 => match like.as_i128() {
            Some(v) => match src.below(4) {
                0 => v + 1,
                1 => v - 1,
                2 => v * 2,
                _ => v / 2,
            },
            None => INTS[src.below(INTS.len())],
        },
        _ => INTS[src.below(INTS.len())],
    };
    // keep the key's own type half the time, otherwise any integer type (wrapping)
    let ty = if src.below(2) == 0 && like.as_i128().is_some() {
        like.type_id()
    } else {
        [0, 1, 2, 3, 4, 5, 10, 11][src.below(8)]
    };
    match ty {
        0 => Value::U8(x as u8),
        1 => Value::I8(x as i8),
        2 => Value::U16(x as u16),
        3 => Value::I16(x as i16),
        4 => Value::U32(x as u32),
        5 => Value::I32(x as i32),
        11 => Value::I64(x as i64),
        _ => Value::U64(x as u64),
    }
}

fn mutate_array(src: &mut dyn Source, a: &Array) -> Array {
    let n = a.len();
    let new_len = match src.below(5) {
        0 => 0,
        1 => n.saturating_sub(1),
        2 => n + 1,
        3 => src.below(2 * n + 2),
        _ => n,
    };
    macro_rules! resize {
        ($v:expr, $fill:expr, $ctor:path) => {{
            let mut v = $v.clone();
            let fill = $fill;
            v.resize(new_len, fill);
            if !v.is_empty() && src.below(2) == 0 {
                let i = src.below(v.len());
                v[i] = $fill;
            }
            $ctor(v)
        }};
    }
    let int = |src: &mut dyn Source| INTS[src.below(INTS.len())];
    match a {
        Array::U8(v) => resize!(v, int(src) as u8, Array::U8),
        Array::I8(v) => resize!(v, int(src) as i8, Array::I8),
        Array::U16(v) => resize!(v, int(src) as u16, Array::U16),
        Array::I16(v) => resize!(v, int(src) as i16, Array::I16),
        Array::U32(v) => resize!(v, int(src) as u32, Array::U32),
        Array::I32(v) => resize!(v, int(src) as i32, Array::I32),
        Array::U64(v) => resize!(v, int(src) as u64, Array::U64),
        Array::I64(v) => resize!(v, int(src) as i64, Array::I64),
        Array::F32(v) => resize!(v, FLOATS[src.below(FLOATS.len())] as f32, Array::F32),
        Array::F64(v) => resize!(v, FLOATS[src.below(FLOATS.len())], Array::F64),
        Array::Bool(v) => resize!(v, src.below(2) == 0, Array::Bool),
        Array::String(v) => {
            let pick = ["", "<bos>", "<eos>", "\u{2581}", "a", "<|image|>"];
            resize!(v, pick[src.below(pick.len())].to_string(), Array::String)
        }
        Array::Array(v) => Array::Array(v.iter().take(new_len).cloned().collect()),
    }
}

/// A new value for a key whose current value is `old` (`None` = absent).
fn new_value(src: &mut dyn Source, old: Option<&Value>) -> Option<Value> {
    let like = old.cloned().unwrap_or(Value::U32(0));
    Some(match src.below(9) {
        0..=2 => int_value(src, &like),
        3 => {
            let f = FLOATS[src.below(FLOATS.len())];
            if src.below(2) == 0 {
                Value::F32(f as f32)
            } else {
                Value::F64(f)
            }
        }
        4 => Value::Bool(src.below(2) == 0),
        5 => Value::String(match src.below(3) {
            0 => String::new(),
            1 => TEMPLATES[src.below(TEMPLATES.len())].to_string(),
            _ => "x".repeat(src.below(4096)),
        }),
        6 => match &like {
            Value::Array(a) => Value::Array(mutate_array(src, a)),
            // a scalar becomes a per-layer-looking array
            _ => {
                let n = [0, 1, 4, 5, 6, 100][src.below(6)];
                let x = INTS[src.below(INTS.len())] as u32;
                Value::Array(Array::U32(vec![x; n]))
            }
        },
        7 => return None,
        _ => match &like {
            Value::Array(a) => Value::Array(mutate_array(src, a)),
            _ => int_value(src, &like),
        },
    })
}

/// Per-layer arrays (`head_count_kv`, `sliding_window_pattern`, ...) as one scalar each, as
/// other converters write them: then a wrong `block_count` is no longer caught by an array
/// length and reaches whatever is sized by it.
fn scalarize(kv: &mut [(String, Value)]) {
    for (k, v) in kv.iter_mut() {
        if !k.starts_with("gemma4.") {
            continue;
        }
        let one = match &*v {
            Value::Array(Array::Bool(a)) => a.first().map(|&b| Value::Bool(b)),
            Value::Array(a) => a
                .to_i128_vec()
                .and_then(|w| w.first().copied())
                .map(|x| Value::U32(x as u32)),
            _ => None,
        };
        if let Some(one) = one {
            *v = one;
        }
    }
}

/// 1 to 3 mutations of `base`'s metadata (a quarter of the time on a copy whose per-layer
/// arrays are scalars).
pub fn mutate(base: &Base, src: &mut dyn Source) -> Vec<(String, Value)> {
    let mut kv = base.kv.clone();
    if src.below(4) == 0 {
        scalarize(&mut kv);
    }
    for _ in 0..1 + src.below(3) {
        let i = src.below(kv.len() + EXTRA_KEYS.len());
        if i < kv.len() {
            match new_value(src, Some(&kv[i].1)) {
                Some(v) => kv[i].1 = v,
                None => {
                    kv.remove(i);
                }
            }
        } else {
            let key = EXTRA_KEYS[i - kv.len()];
            if let Some(v) = new_value(src, None) {
                kv.retain(|(k, _)| k != key);
                kv.push((key.to_string(), v));
            }
        }
    }
    kv
}

/// Writes the mutated model to `path`.
pub fn write(base: &Base, kv: &[(String, Value)], path: &Path) {
    let mut md = Metadata::default();
    for (k, v) in kv {
        md.insert(k.clone(), v.clone());
    }
    let descs: Vec<TensorDesc> = base.tensors.iter().map(|(d, _)| d.clone()).collect();
    let mut w = GgufWriter::create(path, &md, &descs, DEFAULT_ALIGNMENT).unwrap();
    for (d, bytes) in &base.tensors {
        w.write_tensor(&d.name, bytes).unwrap();
    }
    w.finish().unwrap();
}

/// How far one case got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reached {
    Open,
    Tokenizer,
    Load,
    Forward,
}

/// Contexts `exercise` loads with: the default, small, large, absurd.
pub const CONTEXTS: [usize; 5] = [0, 64, 1 << 24, 1 << 40, 1 << 62];

/// Runs one mutated file through everything that reads metadata, loading with a context of
/// `n_ctx`; `Err`s are fine.
pub fn exercise(path: &Path, n_ctx: usize) -> Reached {
    use lode::model::{KvType, Logits, ModelOptions};
    let Ok(g) = Gguf::open(path) else {
        return Reached::Open;
    };
    let g = Arc::new(g);
    let _ = lode::model::params::ParamReport::from_gguf(&g);
    let _ = lode::model::kv_estimate(&g, 0, KvType::F16);
    let _ = lode::model::kv_estimate(&g, n_ctx, KvType::Q8_0);
    let mut reached = Reached::Tokenizer;
    let tok = lode::tokenizer::Tokenizer::from_gguf(g.metadata()).ok();
    if let Some(t) = &tok {
        let ids = t.encode("Hello <start_of_turn>world", true, true);
        let _ = t.decode(&ids, true);
    }
    if let Ok(tmpl) = lode::chat::ChatTemplate::from_gguf_or_builtin(g.metadata()) {
        let msgs = vec![serde_json::json!({"role": "user", "content": "hi"})];
        let _ = tmpl.render(&lode::chat::RenderRequest::new(&msgs));
    }
    let opts = ModelOptions {
        n_ctx,
        ..ModelOptions::default()
    };
    if let Ok(mut m) = lode::model::load(g.clone(), &opts) {
        reached = Reached::Load;
        let first = tok.as_ref().and_then(|t| t.bos()).unwrap_or(2);
        if m.forward(&[first], Logits::Last).is_ok() {
            reached = Reached::Forward;
        }
    }
    reached
}
