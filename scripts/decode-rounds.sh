#!/usr/bin/env bash
# Issue #12's decode ratio, interleaved (outside CI): per round one `lode bench` tg32 and one
# `llama-bench` tg32 with `--repack 0` and with `--repack 1`, on one GGUF, then per engine the
# median tok/s and the median of each round's ratio lode / llama.cpp. On the 2-vCPU VM the
# machine flips between a slow and a fast state at minute scale (lode 2 t decode ~12 or ~16
# tok/s, the bandwidth probe 35 or 61 GB/s), so a table whose rows run minutes apart compares
# states, not engines; neighbours in one round share the state. Run it alone:
#
#   scripts/quiet-run -- scripts/decode-rounds.sh MOE.gguf ROUNDS [LODE_BINARY]
#
# THREADS (default 2) sets -t; LODE_ARGS adds lode bench flags (e.g. "--paging mmap"; the
# default `auto` is cache mode when every expert fits, as on the 24 GiB VM). Each lode row
# prints its probe (GB/s) beside its tok/s.
set -euo pipefail
cd "$(dirname "$0")/.."
M=${1:?usage: scripts/decode-rounds.sh MOE.gguf ROUNDS [LODE_BINARY]}
R=${2:?rounds}
L=${3:-target/release/lode}
B=${LLAMA_BIN:-$HOME/.cache/lode-ref/llama.cpp/build/bin}
T=${THREADS:-2}
# llama-bench --repack 1 fills RAM with its repacked copy and pushes the file out of the page
# cache: every run starts after the file is read twice (resident, as in compare-decode.sh)
warm() { dd if="$M" of=/dev/null bs=16M status=none; dd if="$M" of=/dev/null bs=16M status=none; }
date -u
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for i in $(seq "$R"); do
  warm
  # shellcheck disable=SC2086 # LODE_ARGS is a list of flags
  "$L" bench -m "$M" -p 0 -n 32 -t "$T" -r 1 ${LODE_ARGS:-} -o csv >"$out.l"
  python3 - "$out.l" "$i" >>"$out" <<'PY'
import csv, sys
r = next(csv.DictReader(open(sys.argv[1])))
print(sys.argv[2], "lode", r["avg_ts"], "probe", f'{float(r["bandwidth"]) / 1e9:.1f}', "bound",
      f'{float(r["bound_fraction"]):.2f}')
PY
  for rp in 0 1; do
    warm
    ts=$("$B/llama-bench" -m "$M" -p 0 -n 32 -t "$T" -r 1 --repack $rp -o csv 2>/dev/null |
      python3 -c 'import csv,sys; print(next(csv.DictReader(sys.stdin))["avg_ts"])')
    echo "$i r$rp $ts" >>"$out"
  done
  grep "^$i " "$out" | tr '\n' ' '
  echo
done
rm -f "$out.l"
python3 - "$out" <<'PY'
import statistics as st, sys
d = {}
for line in open(sys.argv[1]):
    f = line.split()
    d.setdefault(int(f[0]), {})[f[1]] = float(f[2])
for k in ("lode", "r0", "r1"):
    print(f"{k}: median {st.median(d[i][k] for i in d):.2f} tok/s")
for k in ("r0", "r1"):
    rs = [d[i]["lode"] / d[i][k] for i in d]
    print(f"lode / llama-bench --repack {k[1]}: median {st.median(rs):.3f}, rounds "
          + " ".join(f"{r:.3f}" for r in rs))
PY
date -u
