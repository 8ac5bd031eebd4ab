#!/usr/bin/env bash
# lode bench vs llama.cpp's llama-bench on the same GGUF, row by row (outside CI).
#
#   scripts/compare-llamacpp.sh MODEL.gguf [-p 128] [-n 64] [-d 0] [-t 2] [-r 5] [--repack 0,1]
#
# Builds llama.cpp into $LODE_REF_CACHE with $LLAMACPP_BUILD_SCRIPT (default: the repo's sibling
# ../shared/tools/build-llamacpp.sh, no AMX) if llama-bench is missing, and lode in release mode.
# Runs llama-bench -o json with the same -p/-n/-d/-t/-r, once per --repack value (llama.cpp's CPU
# weight repacking into interleaved layouts, on by default; 0 keeps the file's layout as lode
# does), then `lode bench -o json`, and prints tokens/s of each and the ratio lode / llama.cpp
# per row. Raw JSON of both is kept in $OUT (default: target/compare-llamacpp/).
set -euo pipefail

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
MODEL=$1; shift
[ -f "$MODEL" ] || { echo "no such model: $MODEL" >&2; exit 2; }
P=128 N=64 D=0 T=2 R=5 REPACK=1
while [ $# -gt 0 ]; do
  case $1 in
    -p) P=$2; shift 2 ;;
    -n) N=$2; shift 2 ;;
    -d) D=$2; shift 2 ;;
    -t) T=$2; shift 2 ;;
    -r) R=$2; shift 2 ;;
    --repack) REPACK=$2; shift 2 ;;
    *) usage ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REF=${LODE_REF_CACHE:-$HOME/.cache/lode-ref}
LLAMA_BENCH=$REF/llama.cpp/build/bin/llama-bench
if [ ! -x "$LLAMA_BENCH" ]; then
  BUILD=${LLAMACPP_BUILD_SCRIPT:-$ROOT/../shared/tools/build-llamacpp.sh}
  [ -f "$BUILD" ] || {
    echo "no $LLAMA_BENCH, and no build script $BUILD: set LODE_REF_CACHE to a llama.cpp build" \
      "or LLAMACPP_BUILD_SCRIPT to its build script" >&2
    exit 2
  }
  echo "building llama.cpp with $BUILD (about 20 minutes on 2 cores)" >&2
  bash "$BUILD" >&2
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build --release --bin lode -q)
LODE=$CARGO_TARGET_DIR/release/lode

OUT=${OUT:-$ROOT/target/compare-llamacpp}
mkdir -p "$OUT"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo "llama-bench -m $MODEL -p $P -n $N -d $D -t $T -r $R --repack $REPACK -o json" >&2
"$LLAMA_BENCH" -m "$MODEL" -p "$P" -n "$N" -d "$D" -t "$T" -r "$R" --repack "$REPACK" -o json \
  > "$OUT/llama-bench.json" 2> "$OUT/llama-bench.log"
echo "lode bench -m $MODEL -p $P -n $N -d $D -t $T -r $R -o json" >&2
"$LODE" bench -m "$MODEL" -p "$P" -n "$N" -d "$D" -t "$T" -r "$R" -o json \
  > "$OUT/lode.json" 2> "$OUT/lode.log"

python3 - "$OUT/lode.json" "$OUT/llama-bench.json" <<'EOF'
import json, sys
lode = json.load(open(sys.argv[1]))
ref = json.load(open(sys.argv[2]))
key = lambda r: (r["n_prompt"], r["n_gen"], r["n_depth"], r["n_threads"])
def name(r):
    t = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
    return t + (f" @ d{r['n_depth']}" if r["n_depth"] else "")
print("| test | threads | llama.cpp repack | llama.cpp t/s | lode t/s | lode / llama.cpp | lode of bound |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in ref:
    mine = [l for l in lode if key(l) == key(r)]
    if not mine:
        continue
    l = mine[0]
    repack = r.get("repack", r.get("no_repack", "?"))
    print(f"| {name(r)} | {r['n_threads']} | {int(repack) if isinstance(repack, bool) else repack} "
          f"| {r['avg_ts']:.2f} ± {r['stddev_ts']:.2f} | {l['avg_ts']:.2f} ± {l['stddev_ts']:.2f} "
          f"| {l['avg_ts'] / r['avg_ts']:.2f}× | {100 * l['bound_fraction']:.0f}% |")
l0 = lode[0]
print(f"\nlode: {l0['isa']}, bytes/token {l0['bytes_per_token'] / 1e6:.1f} MB, bandwidth "
      f"{l0['bandwidth'] / 1e9:.2f} GB/s at {l0['n_threads']} thread(s); "
      f"llama.cpp: {ref[0].get('build_commit', '?')} ({ref[0].get('cpu_info', '')})")
EOF
