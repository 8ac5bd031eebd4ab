//! Arbitrary bytes into the GGUF header parser: it must return Ok or Err, never panic, hang or
//! allocate more than the input justifies (libFuzzer's -rss_limit_mb catches the latter).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = lode::gguf::parse(data) {
        // Rendering the message must not panic either.
        let _ = e.to_string();
    }
});
