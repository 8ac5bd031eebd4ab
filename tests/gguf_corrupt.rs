//! Thousands of corrupted variants of the tiny Gemma 4 GGUFs: every one must be an `Err` whose
//! message names a byte offset or a key, and none may panic.
//!
//! The header layout is walked here independently of lode's reader (field by field, as the GGUF
//! spec lays it out), so the mutations hit real field boundaries; the data-section facts (where
//! the data starts, where the last tensor ends) come from the gguf-py dumps. Mutations are made in
//! place on one copy of each file and undone after each parse, so no variant copies tensor data.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use common::rng::Rng;
use lode::gguf::{parse, Gguf};

const FILES: [&str; 5] = [
    "gemma4-tiny-public-q4_0",
    "gemma4-tiny-public-q4_k_m",
    "gemma4-tiny-public-q8_0",
    "gemma4-tiny-public-f16",
    "gemma4-tiny-public-f32",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

// ---- an independent walk over the header ------------------------------------------------------

#[derive(Default)]
struct Kv {
    start: usize,
    key_len_at: usize,
    key_at: usize,
    type_at: usize,
    value_at: usize,
    ty: u32,
    /// (length field, first byte, length) of the string value or of each string array item.
    strings: Vec<(usize, usize, u64)>,
    /// Element type and length fields of an array value.
    array: Option<(usize, usize)>,
    /// Every bool byte.
    bools: Vec<usize>,
}

struct Ti {
    start: usize,
    name_len_at: usize,
    name_at: usize,
    name_len: u64,
    n_dims_at: usize,
    dims_at: Vec<usize>,
    type_at: usize,
    offset_at: usize,
    offset: u64,
}

struct Layout {
    kvs: Vec<Kv>,
    tis: Vec<Ti>,
    header_end: usize,
    data_offset: usize,
    /// Data-section offsets where each tensor starts.
    starts: Vec<u64>,
    /// End of the last tensor, absolute.
    data_end: usize,
}

struct Walk<'a> {
    b: &'a [u8],
    p: usize,
}

impl Walk<'_> {
    fn u32(&mut self) -> u32 {
        let v = u32::from_le_bytes(self.b[self.p..self.p + 4].try_into().unwrap());
        self.p += 4;
        v
    }
    fn u64(&mut self) -> u64 {
        let v = u64::from_le_bytes(self.b[self.p..self.p + 8].try_into().unwrap());
        self.p += 8;
        v
    }
    fn string(&mut self) -> (usize, usize, u64) {
        let len_at = self.p;
        let n = self.u64();
        let at = self.p;
        self.p += n as usize;
        (len_at, at, n)
    }
    fn value(&mut self, ty: u32, kv: &mut Kv, top: bool) {
        match ty {
            0 | 1 => self.p += 1,
            7 => {
                kv.bools.push(self.p);
                self.p += 1
            }
            2 | 3 => self.p += 2,
            4..=6 => self.p += 4,
            10..=12 => self.p += 8,
            8 => {
                let s = self.string();
                kv.strings.push(s);
            }
            9 => {
                let ty_at = self.p;
                let et = self.u32();
                let len_at = self.p;
                let n = self.u64();
                if top {
                    kv.array = Some((ty_at, len_at));
                }
                for _ in 0..n {
                    self.value(et, kv, false);
                }
            }
            t => panic!("fixture has value type {t}"),
        }
    }
}

fn layout(b: &[u8], dump: &serde_json::Value) -> Layout {
    let mut w = Walk { b, p: 8 };
    let n_tensors = w.u64();
    let n_kv = w.u64();
    let mut kvs = Vec::new();
    for _ in 0..n_kv {
        let mut kv = Kv {
            start: w.p,
            ..Kv::default()
        };
        let (key_len_at, key_at, _) = w.string();
        kv.key_len_at = key_len_at;
        kv.key_at = key_at;
        kv.type_at = w.p;
        kv.ty = w.u32();
        kv.value_at = w.p;
        w.value(kv.ty, &mut kv, true);
        kvs.push(kv);
    }
    let mut tis = Vec::new();
    for _ in 0..n_tensors {
        let start = w.p;
        let (name_len_at, name_at, name_len) = w.string();
        let n_dims_at = w.p;
        let n_dims = w.u32();
        let dims_at = (0..n_dims).map(|i| w.p + 8 * i as usize).collect();
        w.p += 8 * n_dims as usize;
        let type_at = w.p;
        w.u32();
        let offset_at = w.p;
        let offset = w.u64();
        tis.push(Ti {
            start,
            name_len_at,
            name_at,
            name_len,
            n_dims_at,
            dims_at,
            type_at,
            offset_at,
            offset,
        });
    }
    let data_offset = dump["data_offset"].as_u64().unwrap() as usize;
    assert_eq!(
        data_offset,
        w.p.div_ceil(32) * 32,
        "walk disagrees with gguf-py"
    );
    let t = dump["tensors"].as_array().unwrap();
    let starts = t.iter().map(|t| t["offset"].as_u64().unwrap()).collect();
    let data_end = t
        .iter()
        .map(|t| t["offset"].as_u64().unwrap() + t["n_bytes"].as_u64().unwrap())
        .max()
        .unwrap() as usize
        + data_offset;
    Layout {
        kvs,
        tis,
        header_end: w.p,
        data_offset,
        starts,
        data_end,
    }
}

// ---- checking ---------------------------------------------------------------------------------

#[derive(Default)]
struct Tally {
    variants: usize,
    failures: Vec<String>,
}

fn names_a_place(msg: &str) -> bool {
    let at_byte = msg
        .split("at byte ")
        .nth(1)
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
    at_byte || msg.contains('`')
}

impl Tally {
    /// `bytes` must be rejected, with a message that says where or which key.
    fn expect_err(&mut self, what: &str, bytes: &[u8]) {
        self.variants += 1;
        match catch_unwind(AssertUnwindSafe(|| parse(bytes))) {
            Err(_) => self.failures.push(format!("{what}: PANIC")),
            Ok(Ok(_)) => self.failures.push(format!("{what}: accepted")),
            Ok(Err(e)) => {
                let msg = e.to_string();
                if msg.is_empty() || !names_a_place(&msg) {
                    self.failures.push(format!("{what}: vague error {msg:?}"));
                }
            }
        }
    }

    /// Overwrites `new` at `at`, parses, restores.
    fn patch(&mut self, what: &str, buf: &mut [u8], at: usize, new: &[u8]) {
        let old = buf[at..at + new.len()].to_vec();
        buf[at..at + new.len()].copy_from_slice(new);
        self.expect_err(what, buf);
        buf[at..at + new.len()].copy_from_slice(&old);
    }
}

const HUGE: [u64; 4] = [u64::MAX, 1 << 63, 1 << 40, 0x7fff_ffff_ffff_ffff];

fn corrupt_file(file_no: usize, name: &str, t: &mut Tally, rng: &mut Rng) {
    let path = fixtures().join(format!("gemma4-tiny/gguf/{name}.gguf"));
    let mut buf = std::fs::read(&path).unwrap();
    let dump: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join(format!("gguf-dumps/{name}.json"))).unwrap(),
    )
    .unwrap();
    let l = layout(&buf, &dump);
    // The unmodified file is fine: every rejection below is the mutation's doing.
    parse(&buf).unwrap_or_else(|e| panic!("{name}: pristine file rejected: {e}"));

    // Truncation at every field boundary of the header, every tensor start, and random points.
    let mut cuts = vec![0, 3, 4, 7, 8, 15, 16, 23, 24];
    for kv in &l.kvs {
        cuts.extend([
            kv.start,
            kv.key_at,
            kv.type_at,
            kv.value_at,
            kv.value_at + 1,
        ]);
        if let Some((ty_at, len_at)) = kv.array {
            cuts.extend([ty_at, len_at, len_at + 8]);
        }
        // Every 16th string of the token and merge tables is enough: they are all alike.
        cuts.extend(kv.strings.iter().step_by(16).flat_map(|s| [s.0, s.1]));
    }
    for ti in &l.tis {
        cuts.extend([ti.start, ti.name_at, ti.n_dims_at, ti.type_at, ti.offset_at]);
        cuts.extend(&ti.dims_at);
    }
    cuts.extend([l.header_end, l.data_offset, l.data_end - 1]);
    cuts.extend(l.starts.iter().map(|&s| l.data_offset + s as usize));
    for _ in 0..300 {
        cuts.push(rng.below(l.data_end));
    }
    cuts.sort_unstable();
    cuts.dedup();
    for n in cuts.into_iter().filter(|&n| n < l.data_end) {
        t.expect_err(&format!("{name}: truncated to {n} bytes"), &buf[..n]);
    }

    // Magic and version.
    t.patch(&format!("{name}: magic"), &mut buf, 0, b"GGUG");
    for v in [0u32, 1, 4, 0x0300_0000, u32::MAX] {
        t.patch(
            &format!("{name}: version {v}"),
            &mut buf,
            4,
            &v.to_le_bytes(),
        );
    }
    // Counts.
    for h in HUGE {
        t.patch(
            &format!("{name}: tensor count {h}"),
            &mut buf,
            8,
            &h.to_le_bytes(),
        );
        t.patch(
            &format!("{name}: kv count {h}"),
            &mut buf,
            16,
            &h.to_le_bytes(),
        );
    }

    for kv in &l.kvs {
        let key = String::from_utf8_lossy(&buf[kv.key_at..kv.type_at]).into_owned();
        let h = HUGE[rng.below(HUGE.len())];
        t.patch(
            &format!("{name}: `{key}` key length {h}"),
            &mut buf,
            kv.key_len_at,
            &h.to_le_bytes(),
        );
        t.patch(
            &format!("{name}: `{key}` key not UTF-8"),
            &mut buf,
            kv.key_at,
            &[0xff],
        );
        for ty in [13u32, 99, u32::MAX] {
            t.patch(
                &format!("{name}: `{key}` value type {ty}"),
                &mut buf,
                kv.type_at,
                &ty.to_le_bytes(),
            );
        }
        if let Some((ty_at, len_at)) = kv.array {
            t.patch(
                &format!("{name}: `{key}` array type 13"),
                &mut buf,
                ty_at,
                &13u32.to_le_bytes(),
            );
            for h in HUGE {
                t.patch(
                    &format!("{name}: `{key}` array length {h}"),
                    &mut buf,
                    len_at,
                    &h.to_le_bytes(),
                );
            }
        }
        // Up to 8 strings per key: bad UTF-8 (a lone continuation byte, an overlong NUL) and a
        // huge length.
        let step = (kv.strings.len() / 8).max(1);
        for &(len_at, at, n) in kv.strings.iter().step_by(step) {
            if n > 0 {
                t.patch(
                    &format!("{name}: `{key}` string not UTF-8"),
                    &mut buf,
                    at,
                    &[0x80],
                );
            }
            if n > 1 {
                t.patch(
                    &format!("{name}: `{key}` overlong UTF-8"),
                    &mut buf,
                    at,
                    &[0xc0, 0x80],
                );
            }
            let h = HUGE[rng.below(HUGE.len())];
            t.patch(
                &format!("{name}: `{key}` string length {h}"),
                &mut buf,
                len_at,
                &h.to_le_bytes(),
            );
        }
        for &b in kv.bools.iter().take(3) {
            t.patch(&format!("{name}: `{key}` bool byte 2"), &mut buf, b, &[2]);
        }
    }

    let data_len = (buf.len() - l.data_offset) as u64;
    let past_end = data_len.div_ceil(32) * 32;
    // Half the tensors of each file (alternating between files): the five files share one
    // layout, so this still hits every tensor of the model in some file.
    for (i, ti) in l.tis.iter().enumerate().skip(file_no % 2).step_by(2) {
        let tn = String::from_utf8_lossy(&buf[ti.name_at..ti.name_at + ti.name_len as usize])
            .into_owned();
        let w = |s: &str| format!("{name}: tensor {tn} {s}");
        let h = HUGE[i % HUGE.len()];
        t.patch(
            &w("name length huge"),
            &mut buf,
            ti.name_len_at,
            &h.to_le_bytes(),
        );
        t.patch(&w("name not UTF-8"), &mut buf, ti.name_at, &[0xfe]);
        for nd in [0u32, 5, 1000, u32::MAX] {
            t.patch(
                &w(&format!("n_dims {nd}")),
                &mut buf,
                ti.n_dims_at,
                &nd.to_le_bytes(),
            );
        }
        for (d, &at) in ti.dims_at.iter().enumerate() {
            for ne in [0u64, 1 << 40, 1 << 62, u64::MAX] {
                t.patch(
                    &w(&format!("dim {d} = {ne}")),
                    &mut buf,
                    at,
                    &ne.to_le_bytes(),
                );
            }
        }
        // A row that is not a whole number of blocks (quantized types only; for F32/F16 any
        // ne0 is whole).
        let ty_name = dump["tensors"][i]["type"].as_str().unwrap();
        if !matches!(ty_name, "F32" | "F16") {
            let ne0 = u64::from_le_bytes(buf[ti.dims_at[0]..ti.dims_at[0] + 8].try_into().unwrap());
            t.patch(
                &w("ne0 + 1"),
                &mut buf,
                ti.dims_at[0],
                &(ne0 + 1).to_le_bytes(),
            );
        }
        for ty in [4u32, 5, 31, 32, 33, 36, 40, 1000, u32::MAX] {
            t.patch(
                &w(&format!("type {ty}")),
                &mut buf,
                ti.type_at,
                &ty.to_le_bytes(),
            );
        }
        for off in [
            past_end,
            past_end + 1024,
            !31u64,
            ti.offset + 1,
            ti.offset + 16,
        ] {
            t.patch(
                &w(&format!("offset {off}")),
                &mut buf,
                ti.offset_at,
                &off.to_le_bytes(),
            );
        }
    }
    // Overlaps: each tensor moved onto the start of the next one in data order, and onto the
    // middle of a big neighbour.
    let mut order: Vec<usize> = (0..l.tis.len()).collect();
    order.sort_by_key(|&i| l.tis[i].offset);
    for pair in order.windows(2) {
        let (a, b) = (&l.tis[pair[0]], &l.tis[pair[1]]);
        let tn =
            String::from_utf8_lossy(&buf[a.name_at..a.name_at + a.name_len as usize]).into_owned();
        t.patch(
            &format!("{name}: tensor {tn} moved onto the next tensor"),
            &mut buf,
            a.offset_at,
            &b.offset.to_le_bytes(),
        );
        t.patch(
            &format!("{name}: next tensor moved onto {tn}"),
            &mut buf,
            b.offset_at,
            &a.offset.to_le_bytes(),
        );
    }
    // The data section cut short by a single byte.
    t.expect_err(
        &format!("{name}: last byte missing"),
        &buf[..l.data_end - 1],
    );
}

/// Inserts `general.alignment` (plus a filler key, 64 bytes together so every offset stays
/// aligned) right after the counts; returns the new file.
fn with_alignment_kv(buf: &[u8], ty: u32, value: &[u8]) -> Vec<u8> {
    let mut kv = Vec::new();
    kv.extend(17u64.to_le_bytes());
    kv.extend(b"general.alignment");
    kv.extend(ty.to_le_bytes());
    kv.extend(value);
    let filler_key = 64 - kv.len() - 8 - 4 - 1;
    kv.extend((filler_key as u64).to_le_bytes());
    kv.extend(vec![b'x'; filler_key]);
    kv.extend(0u32.to_le_bytes()); // UINT8
    kv.push(7);
    assert_eq!(kv.len(), 64);
    let mut out = buf[..24].to_vec();
    let n_kv = u64::from_le_bytes(buf[16..24].try_into().unwrap()) + 2;
    out[16..24].copy_from_slice(&n_kv.to_le_bytes());
    out.extend(kv);
    out.extend(&buf[24..]);
    out
}

#[test]
fn corrupted_headers_are_errors_not_panics() {
    let start = std::time::Instant::now();
    let mut t = Tally::default();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (i, name) in FILES.into_iter().enumerate() {
        corrupt_file(i, name, &mut t, &mut rng);
    }

    // Alignment: a valid general.alignment = 32 keeps the file valid; bad values are refused.
    let base =
        std::fs::read(fixtures().join("gemma4-tiny/gguf/gemma4-tiny-public-q4_0.gguf")).unwrap();
    parse(&with_alignment_kv(&base, 4, &32u32.to_le_bytes())).expect("alignment 32 is valid");
    for a in [0u32, 3, 48, 0x8000_0001] {
        t.expect_err(
            &format!("alignment {a}"),
            &with_alignment_kv(&base, 4, &a.to_le_bytes()),
        );
    }
    t.expect_err(
        "alignment as INT32",
        &with_alignment_kv(&base, 5, &32u32.to_le_bytes()),
    );
    t.expect_err(
        "alignment as FLOAT32",
        &with_alignment_kv(&base, 6, &32f32.to_le_bytes()),
    );
    // A larger alignment the data offsets do not honour.
    let big = with_alignment_kv(&base, 4, &(1u32 << 20).to_le_bytes());
    t.expect_err("alignment 1 MiB", &big);

    let elapsed = start.elapsed();
    assert!(
        t.failures.is_empty(),
        "{} of {} variants misbehaved:\n{}",
        t.failures.len(),
        t.variants,
        t.failures.join("\n")
    );
    assert!(t.variants >= 2000, "only {} variants", t.variants);
    eprintln!("{} corrupted variants rejected in {elapsed:?}", t.variants);
}

#[test]
fn corrupted_files_on_disk_are_errors() {
    let dir = common::tmp_dir("gguf-corrupt");
    let base =
        std::fs::read(fixtures().join("gemma4-tiny/gguf/gemma4-tiny-public-q4_0.gguf")).unwrap();
    let mut variants: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("magic only", b"GGUF".to_vec()),
        ("header only", base[..4096].to_vec()),
        ("last byte missing", base[..base.len() - 1].to_vec()),
    ];
    let mut huge_kv = base.clone();
    huge_kv[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    variants.push(("huge kv count", huge_kv));
    let mut bad_version = base.clone();
    bad_version[4..8].copy_from_slice(&7u32.to_le_bytes());
    variants.push(("version 7", bad_version));
    for (what, bytes) in variants {
        let p = dir.join(format!("{}.gguf", what.replace(' ', "-")));
        std::fs::write(&p, &bytes).unwrap();
        let r = catch_unwind(|| Gguf::open(&p));
        let msg = match r {
            Err(_) => panic!("{what}: Gguf::open panicked"),
            Ok(Ok(_)) => panic!("{what}: accepted"),
            Ok(Err(e)) => e.to_string(),
        };
        assert!(names_a_place(&msg), "{what}: vague error {msg:?}");
        assert!(
            msg.contains(p.to_str().unwrap()),
            "{what}: error does not name the file: {msg}"
        );
    }
    let missing = dir.join("missing.gguf");
    let msg = Gguf::open(&missing).unwrap_err().to_string();
    assert!(msg.contains("missing.gguf"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}
