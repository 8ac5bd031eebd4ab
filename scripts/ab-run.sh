#!/usr/bin/env bash
# Interleaved `lode run` A/B (outside CI): generation tok/s of each binary, ROUNDS rounds in
# turn (seed = round), 256 tokens of "The history of the printing press", 2 threads; then the
# median per binary. Extra `lode run` arguments go before `--` (e.g. --temp 0):
#
#   scripts/quiet-run -- scripts/ab-run.sh MODEL.gguf ROUNDS [ARGS...] -- BIN...
set -euo pipefail
M=${1:?usage: scripts/ab-run.sh MODEL.gguf ROUNDS [ARGS...] -- BIN...}
R=${2:?rounds}
shift 2
A=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do A+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ $# -ge 1 ] || { echo "give at least one binary after --" >&2; exit 2; }
for i in $(seq "$R"); do
  for b in "$@"; do
    ts=$("$b" run -m "$M" -p "The history of the printing press" -n 256 --ignore-eos -t 2 \
      --seed "$i" ${A[@]+"${A[@]}"} 2>&1 >/dev/null | grep -o 'generated [0-9]* tokens, [0-9.]*' |
      awk '{print $4}')
    echo "$b $ts"
  done
done | python3 -c '
import statistics as st, sys
d = {}
for line in sys.stdin:
    b, t = line.split()
    d.setdefault(b, []).append(float(t))
for b, ts in d.items():
    print(f"{b}: median {st.median(ts):.1f} tok/s, runs {ts}")'
