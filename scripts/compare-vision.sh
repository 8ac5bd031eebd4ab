#!/usr/bin/env bash
# Vision encoder throughput: lode vs llama.cpp's llama-mtmd-cli on the same files (outside CI).
#
#   scripts/compare-vision.sh [-t THREADS] [-r RUNS] [--mmproj F] [--model F] [IMAGE ...]
#
# Defaults: the tiny Gemma 4 vision fixture (tests/fixtures/gemma4-vision-tiny: F32 text model,
# F32 mmproj, its three images), 2 threads, 3 runs per image. Each run is a fresh process that
# encodes one image at the default budget (lode: 280 soft tokens, transformers' policy;
# llama.cpp: its own policy, which gives a different token count for non-square images, see
# docs/performance.md) and generates one token. The encoder time is what each tool prints:
# lode's "encoded in S s", llama-mtmd-cli's "mtmd batch encoding done in MS ms" (preprocessing
# excluded in both). Prints the best of RUNS per image as images/s and the ratio lode/llama.cpp.
# Needs lode in release mode (built if missing) and llama-mtmd-cli ($LLAMA_MTMD, default
# ~/.cache/lode-ref/llama.cpp/build/bin/llama-mtmd-cli). $LODE overrides the lode binary (e.g. an
# older build kept aside for a before/after run).
set -euo pipefail

cd "$(dirname "$0")/.."
F=tests/fixtures/gemma4-vision-tiny
T=2 R=3
MMPROJ=$F/gguf/mmproj-gemma4-vision-tiny-public-f32.gguf
MODEL=$F/gguf/gemma4-vision-tiny-public-f32.gguf
IMAGES=()
while [ $# -gt 0 ]; do
  case $1 in
    -t) T=$2; shift 2 ;;
    -r) R=$2; shift 2 ;;
    --mmproj) MMPROJ=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) IMAGES+=("$1"); shift ;;
  esac
done
[ ${#IMAGES[@]} -gt 0 ] || IMAGES=("$F/images/img0_square.png" "$F/images/img1_wide.jpg" "$F/images/img2_small.png")
LLAMA=${LLAMA_MTMD:-$HOME/.cache/lode-ref/llama.cpp/build/bin/llama-mtmd-cli}
[ -x "$LLAMA" ] || { echo "no llama-mtmd-cli at $LLAMA (set LLAMA_MTMD)" >&2; exit 2; }
TARGET=${CARGO_TARGET_DIR:-target}
LODE=${LODE:-$TARGET/release/lode}
[ -x "$LODE" ] || cargo build --release --bin lode >&2

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) | threads $T | runs $R | mmproj $MMPROJ"
printf '%-28s %8s %10s %8s %10s %8s\n' image lode_tok lode_img/s llama_tok llama_img/s ratio
for img in "${IMAGES[@]}"; do
  best_l= best_c= tok_l= tok_c=
  for _ in $(seq "$R"); do
    out=$("$LODE" run -m "$MODEL" --mmproj "$MMPROJ" --image "$img" -p hi -n 1 --temp 0 -t "$T" 2>&1 >/dev/null)
    s=$(sed -n 's/.*encoded in \([0-9.]*\) s.*/\1/p' <<<"$out" | head -1)
    tok_l=$(sed -n 's/.*→ \([0-9]*\) soft tokens.*/\1/p' <<<"$out" | head -1)
    [ -n "$s" ] || { echo "lode printed no encoder time:" >&2; echo "$out" >&2; exit 1; }
    best_l=$(awk -v a="$s" -v b="$best_l" 'BEGIN { print (b == "" || a < b) ? a : b }')
    out=$("$LLAMA" -m "$MODEL" --mmproj "$MMPROJ" --image "$img" -p hi -n 1 -t "$T" --jinja 2>&1 || true)
    ms=$(sed -n 's/.*batch encoding done in \([0-9]*\) ms.*/\1/p' <<<"$out" | head -1)
    tok_c=$(sed -n 's/.*n_tokens_batch = \([0-9]*\).*/\1/p' <<<"$out" | head -1)
    [ -n "$ms" ] || { echo "llama-mtmd-cli printed no encoder time:" >&2; echo "$out" | tail -5 >&2; exit 1; }
    s=$(awk -v m="$ms" 'BEGIN { print m / 1000 }')
    best_c=$(awk -v a="$s" -v b="$best_c" 'BEGIN { print (b == "" || a < b) ? a : b }')
  done
  awk -v n="$(basename "$img")" -v l="$best_l" -v c="$best_c" -v tl="$tok_l" -v tc="${tok_c:-?}" \
    'BEGIN { printf "%-28s %8s %10.2f %8s %10.2f %8.2f\n", n, tl, 1 / l, tc, 1 / c, c / l }'
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
