#!/usr/bin/env bash
# The test command from the README: fetches the real test model if it is not cached yet,
# then runs every test. Extra arguments go to `cargo test` (e.g. a test-name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-model.sh >/dev/null
exec cargo test --no-fail-fast "$@"
