#!/usr/bin/env bash
# Issue #12's Gemma 3 270M check, interleaved (outside CI): per round `lode run` of each binary
# (greedy, --ignore-eos, N tokens, 2 threads), `llama-completion` with the same prompt, and
# `lode bench` tgN of the first binary, in an order that rotates from round to round; then each
# one's median generation tok/s, its ratio to llama-completion's median, and the first binary's
# `lode run` against its `lode bench`.
# Neighbours in one round share the machine's state (the 2-vCPU VM flips between a slow and a
# fast memory state at minute scale), so run it alone:
#
#   scripts/quiet-run -- scripts/run-rounds.sh MODEL.gguf ROUNDS [LODE_BINARY...]
#
# THREADS (default 2) and N (tokens, default 128) change the run: 64 tokens of the 270M take
# ~0.6 s, and single runs that short swung by ±20 % on the VM.
set -euo pipefail
cd "$(dirname "$0")/.."
M=${1:?usage: scripts/run-rounds.sh MODEL.gguf ROUNDS [LODE_BINARY...]}
R=${2:?rounds}
shift 2
[ $# -ge 1 ] || set -- target/release/lode
B=${LLAMA_BIN:-$HOME/.cache/lode-ref/llama.cpp/build/bin}
T=${THREADS:-2}
N=${N:-128}
P="The history of the printing press"
date -u
run() {
  t=$("$1" run -m "$M" -p "$P" -n "$N" --temp 0 --ignore-eos -t "$T" 2>&1 >/dev/null |
    grep -o 'generated [0-9]* tokens, [0-9.]*' | awk '{print $4}')
  echo "run:$1 $t"
}
completion() {
  t=$("$B/llama-completion" -m "$M" -p "$P" -n "$N" --temp 0 --ignore-eos -t "$T" -no-cnv \
    </dev/null 2>&1 | grep ' eval time' | grep -v prompt | grep -o '[0-9.]* tokens per second' |
    awk '{print $1}')
  echo "llama-completion $t"
}
bench() {
  t=$("$1" bench -m "$M" -p 0 -n "$N" -t "$T" -r 1 2>&1 | grep -o "tg$N t$T: [0-9.]*" |
    awk '{print $3}')
  echo "bench:$1 $t"
}
# The order rotates from round to round: with a fixed order, `lode bench` right after
# llama-completion measured 10-11 % below `lode run` (two sets of rounds), and within 1 % of it
# right after a lode process (docs/performance.md, 2026-12-08).
steps=()
for b in "$@"; do steps+=("run $b"); done
steps+=("completion" "bench $1")
for i in $(seq "$R"); do
  for j in $(seq 0 $((${#steps[@]} - 1))); do
    # shellcheck disable=SC2086 # a step is a function name and its argument (paths without spaces)
    ${steps[$(((i + j) % ${#steps[@]}))]}
  done
done | python3 -c '
import statistics as st, sys
d = {}
for line in sys.stdin:
    k, v = line.split()
    d.setdefault(k, []).append(float(v))
ref = st.median(d["llama-completion"])
for k, v in d.items():
    print(f"{k}: median {st.median(v):.1f} tok/s ({st.median(v) / ref:.3f}x llama-completion), runs {v}")
first = [k for k in d if k.startswith("run:")][0]
bench = [k for k in d if k.startswith("bench:")][0]
print(f"{first} / {bench}: {st.median(d[first]) / st.median(d[bench]):.3f}")'
date -u
