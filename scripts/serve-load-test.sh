#!/usr/bin/env bash
# Load tests for `lode serve` on loopback (not run in CI; tests/serve.rs has the short version).
#
# 1. Robustness: CLIENTS concurrent streaming chat clients for SECS seconds against --parallel 2
#    on the tiny Gemma 4 fixture. Every request must either complete (HTTP 200, stream ends with
#    `data: [DONE]`) or be refused with the documented 503 + Retry-After; the server must stay
#    up; its RSS is printed before and after.
#
#      scripts/serve-load-test.sh [SECS=60] [CLIENTS=32] [MODEL=tiny q8_0 fixture]
#
# 2. Throughput: 1, 2, 4, 8 concurrent streaming clients against `lode serve --parallel N` and
#    `llama-server -np N` on the same file and threads, in one run (scripts/serve-bench.py):
#    aggregate tok/s and each client's time to first token. Run it through quiet-run:
#
#      scripts/quiet-run -- scripts/serve-load-test.sh bench --model M.gguf [--tokens 64]
#
# Needs a built binary: cargo build --release (uses $CARGO_TARGET_DIR or target/).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = bench ]; then
  shift
  export LODE_BIN=${LODE_BIN:-${CARGO_TARGET_DIR:-target}/release/lode}
  exec python3 scripts/serve-bench.py "$@"
fi
SECS=${1:-60}
CLIENTS=${2:-32}
MODEL=${3:-tests/fixtures/gemma4-tiny/gguf/gemma4-tiny-public-q8_0.gguf}
BIN=${LODE_BIN:-${CARGO_TARGET_DIR:-target}/release/lode}
[ -x "$BIN" ] || { echo "no binary at $BIN (cargo build --release, or set LODE_BIN)" >&2; exit 2; }

WORK=$(mktemp -d)
LOG=$WORK/server.log
"$BIN" serve -m "$MODEL" --port 0 --parallel 2 --queue 16 --threads 2 2>"$LOG" &
PID=$!
cleanup() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

for _ in $(seq 100); do grep -q 'listening on' "$LOG" && break; sleep 0.1; done
ADDR=$(grep -o 'http://[0-9.:]*' "$LOG" | head -1)
[ -n "$ADDR" ] || { cat "$LOG"; exit 1; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }

# Warm up (first-touch of the mapping and the KV caches), then measure.
curl -sf "$ADDR/v1/chat/completions" -H 'Content-Type: application/json' -d '{"messages":[{"role":"user","content":"warm up"}],"max_tokens":64}' >/dev/null
RSS_BEFORE=$(rss_kib)

client() {
  local id=$1 end=$2 ok=0 busy=0 bad=0 n=0 out=$WORK/body-$1
  while [ "$(date +%s)" -lt "$end" ]; do
    n=$((n + 1))
    local body="{\"messages\":[{\"role\":\"user\",\"content\":\"client $id request $n: tell me a story\"}],\"max_tokens\":64,\"stream\":true,\"temperature\":0.8}"
    local code
    code=$(curl -s -N -o "$out" -D "$out.h" -w '%{http_code}' --max-time 120 \
      -H 'Content-Type: application/json' -d "$body" "$ADDR/v1/chat/completions" || echo 000)
    if [ "$code" = 200 ] && tail -c 16 "$out" | grep -q 'data: \[DONE\]' && ! grep -q '"error"' "$out"; then
      ok=$((ok + 1))
    elif [ "$code" = 503 ] && grep -qi '^retry-after: 1' "$out.h" && grep -q '"server_busy"' "$out"; then
      busy=$((busy + 1)); sleep 1   # as Retry-After says
    else
      bad=$((bad + 1)); echo "client $id: HTTP $code: $(head -c 300 "$out")" >&2
    fi
  done
  echo "$ok $busy $bad" > "$WORK/client-$id"
}

# Two rounds: memory is flat when the second round ends where the first one did.
TOTAL_OK=0; TOTAL_BUSY=0; TOTAL_BAD=0; AFTER=()
for round in 1 2; do
  END=$(( $(date +%s) + SECS ))
  T0=$(date +%s)
  PIDS=()
  for i in $(seq "$CLIENTS"); do client "$i" "$END" & PIDS+=($!); done
  PEAK=0
  while [ "$(date +%s)" -lt "$END" ]; do
    r=$(rss_kib); [ "$r" -gt "$PEAK" ] && PEAK=$r; sleep 1
  done
  wait "${PIDS[@]}" 2>/dev/null || true
  T1=$(date +%s)
  sleep 2
  RSS_AFTER=$(rss_kib); AFTER+=("$((RSS_AFTER / 1024))")
  read -r OK BUSY BAD < <(cat "$WORK"/client-* | awk '{o+=$1; b+=$2; x+=$3} END {print o, b, x}')
  TOTAL_OK=$((TOTAL_OK + OK)); TOTAL_BUSY=$((TOTAL_BUSY + BUSY)); TOTAL_BAD=$((TOTAL_BAD + BAD))
  echo "round $round: clients $CLIENTS, $((T1 - T0)) s: completed $OK, refused 503 $BUSY, other $BAD; RSS peak $((PEAK / 1024)) MiB, after $((RSS_AFTER / 1024)) MiB"
done
OK=$TOTAL_OK; BAD=$TOTAL_BAD
HEALTH=$(curl -s -o /dev/null -w '%{http_code}' "$ADDR/health")
GEN=$(curl -s "$ADDR/metrics" | awk '/^lode_generated_tokens_total/ {print $2}')
CANCELLED=$(curl -s "$ADDR/metrics" | awk '/^lode_cancelled_total/ {print $2}')
echo "total: completed $TOTAL_OK, refused 503 $TOTAL_BUSY, other $TOTAL_BAD; generated tokens $GEN, cancelled $CANCELLED"
echo "RSS before $((RSS_BEFORE / 1024)) MiB, after round 1 ${AFTER[0]} MiB, after round 2 ${AFTER[1]} MiB"
echo "server alive: $(kill -0 "$PID" 2>/dev/null && echo yes || echo NO), /health $HEALTH"
grep -c 'panicked' "$LOG" >/dev/null && { echo "server log has a panic:"; grep panicked "$LOG"; exit 1; }
[ "$BAD" = 0 ] && [ "$HEALTH" = 200 ] && [ "$OK" -gt 0 ]
