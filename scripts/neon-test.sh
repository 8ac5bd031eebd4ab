#!/usr/bin/env bash
# Cross-compile the NEON kernels (plain and +dotprod) with the scalar reference and the C test
# driver csrc/test/kernel_test.c, and run both under qemu-aarch64. Exits non-zero on any
# mismatch. Installs gcc-aarch64-linux-gnu and qemu-user with apt-get if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    apt-get install -y gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null
fi

out=${NEON_TEST_DIR:-$(mktemp -d)}
mkdir -p "$out"
cc=aarch64-linux-gnu-gcc
cflags=(-O3 -std=c11 -Wall -Wextra -Icsrc)

build() { # suffix, extra flags...
    local sfx=$1
    shift
    "$cc" "${cflags[@]}" "$@" -c csrc/scalar.c -o "$out/scalar_$sfx.o"
    "$cc" "${cflags[@]}" "$@" -DLODE_SUFFIX="$sfx" -c csrc/neon.c -o "$out/neon_$sfx.o"
    "$cc" "${cflags[@]}" "$@" -DLODE_SUFFIX="$sfx" csrc/test/kernel_test.c \
        "$out/scalar_$sfx.o" "$out/neon_$sfx.o" -lm -o "$out/kernel_test_$sfx"
}
build neon
build neon_dotprod -march=armv8.2-a+dotprod

run() { # cpu, binary
    echo "== qemu-aarch64 -cpu $1 $(basename "$2")"
    qemu-aarch64 -cpu "$1" -L /usr/aarch64-linux-gnu "$2"
}
status=0
run max "$out/kernel_test_neon" || status=1
run max "$out/kernel_test_neon_dotprod" || status=1
# a CPU without dotprod (Cortex-A57, ARMv8.0) runs only the plain build
run cortex-a57 "$out/kernel_test_neon" || status=1
exit $status
