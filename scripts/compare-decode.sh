#!/usr/bin/env bash
# Issue #12's same-run comparison (outside CI): lode against llama.cpp on one GGUF, decode and
# prefill at 2 and 1 threads, and `lode run` against `llama-completion` on the 270M.
#
#   scripts/compare-decode.sh MOE.gguf [LODE_BINARY]
#
# MOE.gguf: e.g. `lode synth --preset gemma4-26b-a4b --routing uniform --seed 1 -o FILE`.
# The page cache is warmed (the file read twice) before every row, since a resident-model
# comparison means nothing when either side faults the file in. Run it alone on the machine.
# First the file is dropped from the page cache and read again: pages cached when the file was
# written (by `lode synth`, cp, a download) sat in small folios that lode's MADV_HUGEPAGE
# mapping could not map as 2 MiB pages (smaps FilePmdMapped 58 MB of a 6.5 GB RSS), while a
# read gives large folios (16.4 GB of 16.4 PMD-mapped). llama.cpp maps 4 KiB pages either way.
set -euo pipefail
cd "$(dirname "$0")/.."
M=${1:?usage: scripts/compare-decode.sh MOE.gguf [LODE_BINARY]}
L=${2:-target/release/lode}
B=${LLAMA_BIN:-$HOME/.cache/lode-ref/llama.cpp/build/bin}
S=$(scripts/fetch-model.sh)
warm() { dd if="$1" of=/dev/null bs=16M status=none; dd if="$1" of=/dev/null bs=16M status=none; }
row() { echo "== $*"; }
date -u; cat /proc/loadavg
dd if="$M" iflag=nocache count=0 status=none # GNU dd: drop the file's cached pages
for t in 2 1; do
  warm "$M"; row "lode tg32 t$t mmap"
  "$L" bench -m "$M" -p 0 -n 32 -t $t -r 3 --paging mmap | grep -E '^\|.*tg'
  # the default, --paging auto: every expert fits, so the arena (cache mode) read at load
  warm "$M"; row "lode tg32 t$t cache (default auto)"
  "$L" bench -m "$M" -p 0 -n 32 -t $t -r 3 | grep -E '^\|.*tg'
  for rp in 0 1; do
    warm "$M"; row "llama-bench tg32 t$t --repack $rp"
    "$B/llama-bench" -m "$M" -p 0 -n 32 -t $t -r 3 --repack $rp | grep tg
  done
  warm "$M"; row "lode pp t$t (default auto: cache)"; "$L" bench -m "$M" -p 64,512 -n 0 -t $t -r 2 | grep -E '^\|.*pp'
  for rp in 0 1; do
    warm "$M"; row "llama-bench pp t$t --repack $rp"
    "$B/llama-bench" -m "$M" -p 64,512 -n 0 -t $t -r 2 --repack $rp | grep pp
  done
done
P="The history of the printing press"
for i in 1 2 3; do
  row "270M lode run (greedy, 64 tokens, 2 threads)"
  "$L" run -m "$S" -p "$P" -n 64 --temp 0 --ignore-eos -t 2 2>&1 >/dev/null | grep generated
  row "270M llama-completion"
  "$B/llama-completion" -m "$S" -p "$P" -n 64 --temp 0 --ignore-eos -t 2 -no-cnv </dev/null 2>&1 |
    grep -E ' eval time'
done
row "270M lode bench tg64"; "$L" bench -m "$S" -p 0 -n 64 -t 2 -r 3 | grep -E '^\|.*tg'
date -u; cat /proc/loadavg
