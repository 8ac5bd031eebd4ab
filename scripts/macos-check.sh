#!/usr/bin/env bash
# Type-checks lode for Apple Silicon macOS (aarch64-apple-darwin) on a Linux machine, with
# every target (library, binary, tests, benches), and compiles its C kernels for that target.
# Nothing is linked or run: there is no macOS SDK or Mac here.
#
#   scripts/macos-check.sh
#
# - Rust: Debian's rustc-web/cargo-web (/usr/bin) with rust-web-src, the standard library's
#   source, which `-Zbuild-std` (allowed on a stable compiler by RUSTC_BOOTSTRAP=1) checks for
#   the Darwin target. `cargo check` runs build.rs, so the C kernels are compiled too.
# - C: clang targets arm64-apple-macos itself; without Apple's SDK the few C library headers
#   the kernels include (math.h, string.h) come from a stub "SDK" written below, holding only
#   the standard prototypes the kernels use. The build script's cc crate finds it via SDKROOT.
#   So this checks that the kernels compile for Apple's ABI (signed char, Mach-O), not Apple's
#   own headers.
#
# Installs what it needs with apt-get (only what is missing). Exits non-zero on any error.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-apple-darwin
export CARGO_TARGET_DIR=${MACOS_TARGET_DIR:-$PWD/target/macos}
export CARGO_INCREMENTAL=0
t0=$(date +%s)
log() { printf 'macos-check: %s\n' "$*" >&2; }

missing=()
[ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ] || missing+=(rustc-web cargo-web)
[ -d /usr/lib/rustlib/src/rust/library/std ] || missing+=(rust-web-src)
command -v clang >/dev/null || missing+=(clang)
command -v llvm-ar >/dev/null || missing+=(llvm)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

sdk=$(mktemp -d)
trap 'rm -rf "$sdk"' EXIT
mkdir -p "$sdk/usr/include"
cat >"$sdk/usr/include/math.h" <<'EOF'
/* Stub for scripts/macos-check.sh: the C99 prototypes lode's kernels use. */
#pragma once
double exp(double);
float expf(float);
float fabsf(float);
float fmaf(float, float, float);
float roundf(float);
float sqrtf(float);
float tanhf(float);
#define INFINITY __builtin_inff()
#define NAN __builtin_nanf("")
EOF
cat >"$sdk/usr/include/string.h" <<'EOF'
/* Stub for scripts/macos-check.sh: the C99 prototypes lode's kernels use. */
#pragma once
#include <stddef.h>
void *memcpy(void *restrict, const void *restrict, size_t);
void *memmove(void *, const void *, size_t);
void *memset(void *, int, size_t);
int memcmp(const void *, const void *, size_t);
EOF

export SDKROOT=$sdk
export CC_aarch64_apple_darwin=clang
export AR_aarch64_apple_darwin=llvm-ar
export RUSTC=/usr/bin/rustc
export RUSTC_BOOTSTRAP=1
log "$(/usr/bin/rustc --version), $(clang --version | head -1)"
/usr/bin/cargo check -Zbuild-std=std,panic_abort --target "$TARGET" --all-targets
log "ok: lode type-checks for $TARGET and its C kernels compile for it ($(($(date +%s) - t0))s)"
