//! Past parsing: libFuzzer picks metadata mutations of the tiny Gemma 4 file (the mutation
//! vocabulary is tests/common/mutate.rs, shared with the deterministic loop in
//! tests/fuzz_metadata.rs), and each mutated file goes through open, tokenizer, chat template,
//! `model::load` and one forward token. Run with `-rss_limit_mb=2048 -malloc_limit_mb=1024`
//! so an unbounded allocation is a finding.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/mutate.rs"]
#[allow(dead_code)]
mod mutate;

fn base() -> &'static mutate::Base {
    static BASE: OnceLock<mutate::Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/gemma4-tiny/gguf/gemma4-tiny-public-q4_0.gguf");
        mutate::Base::load(&p)
    })
}

fuzz_target!(|data: &[u8]| {
    let base = base();
    use mutate::Source;
    let mut src = mutate::Bytes(data);
    let n_ctx = mutate::CONTEXTS[src.below(mutate::CONTEXTS.len())];
    let kv = mutate::mutate(base, &mut src);
    let path = std::env::temp_dir().join(format!("lode-fuzz-{}.gguf", std::process::id()));
    mutate::write(base, &kv, &path);
    mutate::exercise(&path, n_ctx);
});
