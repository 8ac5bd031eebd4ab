#!/usr/bin/env bash
# Build the x86 kernels (avx2.c, avx512.c) with the scalar reference and the C test driver
# csrc/test/kernel_test.c, and run each ISA this CPU has natively. Exits non-zero on any
# mismatch (CC=clang works too). Flags as build.rs's.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(uname -m)" = x86_64 ] || { echo "x86-kernel-test: not an x86-64 machine, skipped"; exit 0; }

out=${X86_TEST_DIR:-$(mktemp -d)}
mkdir -p "$out"
cc=${CC:-gcc}
base=(-O3 -std=c11 -ffp-contract=off -Icsrc)
avx2=(-mavx2 -mfma -mf16c)
avx512=(-mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx512dq "${avx2[@]}")
has() { grep -qw "$1" /proc/cpuinfo; }

"$cc" "${base[@]}" -c csrc/scalar.c -o "$out/scalar.o"
status=0
if has avx2 && has fma && has f16c; then
    "$cc" "${base[@]}" "${avx2[@]}" -c csrc/avx2.c -o "$out/avx2.o"
    "$cc" "${base[@]}" -mavx2 -DLODE_SUFFIX=avx2 -DLODE_TEST_TYPES=LODE_AVX2_TYPES \
        csrc/test/kernel_test.c "$out/scalar.o" "$out/avx2.o" -lm -o "$out/kernel_test_avx2"
    echo "== kernel_test avx2"
    "$out/kernel_test_avx2" || status=1
fi
if has avx512f && has avx512bw && has avx512vl && has avx512dq && has avx512_vnni; then
    "$cc" "${base[@]}" "${avx512[@]}" -c csrc/avx512.c -o "$out/avx512.o"
    "$cc" "${base[@]}" -mavx2 -DLODE_SUFFIX=avx512 -DLODE_TEST_TYPES=LODE_AVX512_TYPES \
        csrc/test/kernel_test.c "$out/scalar.o" "$out/avx512.o" -lm -o "$out/kernel_test_avx512"
    echo "== kernel_test avx512"
    "$out/kernel_test_avx512" || status=1
fi
exit $status
