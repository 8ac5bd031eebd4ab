#!/usr/bin/env bash
# Interleaved decode A/B of lode builds (outside CI): `lode bench -p 0 -n 32 -r 1` on one model,
# the binaries in turn for ROUNDS rounds, then per binary the median tok/s and the median of
# each round's ratio to the first binary. Neighbouring runs share the machine's minute-scale
# bandwidth drift, so the ratio holds to ~±1 % where single runs move ±15 %. Run it alone:
#
#   scripts/quiet-run -- scripts/ab-decode.sh MODEL.gguf ROUNDS BASE_BIN NEW_BIN...
#
# THREADS (default 2) sets -t. The bandwidth probe is shrunk to 64 MiB (its bound is not used).
set -euo pipefail
M=${1:?usage: scripts/ab-decode.sh MODEL.gguf ROUNDS BIN...}
R=${2:?rounds}
shift 2
[ $# -ge 1 ] || { echo "give at least one binary" >&2; exit 2; }
# drop the file's cached pages, then read it twice: every build starts from a page cache
# refilled the same way (docs/bench.md: one morning a piecemeal refill cost ~25 % of decode)
dd if="$M" iflag=nocache count=0 status=none
dd if="$M" of=/dev/null bs=16M status=none
dd if="$M" of=/dev/null bs=16M status=none
date -u
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for i in $(seq "$R"); do
  for k in $(seq 0 $(($# - 1))); do
    b=${@:$((k + 1)):1}
    ts=$("$b" bench -m "$M" -p 0 -n 32 -t "${THREADS:-2}" -r 1 --bandwidth-size 64MiB -o csv |
      python3 -c 'import csv,sys; print(next(csv.DictReader(sys.stdin))["avg_ts"])')
    echo "$i $k $ts" >>"$out"
  done
done
python3 - "$out" "$@" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
d = {}
for i, k, t in rows:
    d.setdefault(int(i), {})[int(k)] = float(t)
for k, b in enumerate(sys.argv[2:]):
    ts = [d[i][k] for i in sorted(d)]
    rs = [d[i][k] / d[i][0] for i in sorted(d)]
    print(f"{b}: median {st.median(ts):.2f} tok/s, runs {' '.join(f'{t:.2f}' for t in ts)}; "
          f"ratio to the first, median {st.median(rs):.3f}")
PY
