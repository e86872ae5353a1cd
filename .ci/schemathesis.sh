#!/usr/bin/env bash
# schemathesis against the OpenAPI document the server serves: every check on a keyless loopback
# server, then the `ignored_auth` check (and the rest) on a keyed server bound beyond loopback.
# Bounded examples and a fixed seed, so a run is reproducible; any finding fails CI.
# Used by .ci/run; by hand: bash .ci/schemathesis.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SCHEMATHESIS_VENV:-${HOME:-/tmp}/.cache/kamiyo-schemathesis}"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==4.32.5"
fi
st="$venv/bin/schemathesis"
cargo build -q -p kamiyo-server
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/kamiyo-hyperliquid"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# serve DATA_DIR BIND LOG: replay a stored scenario and serve it; waits for /health.
serve() {
  local data=$1 bind=$2 log=$3 port=${2##*:}
  KAMIYO_SERVER__DATA_DIR="$data" KAMIYO_SERVER__BIND="$bind" KAMIYO_TELEMETRY__LOG_LEVEL=warn \
    KAMIYO_SERVER__RATE_LIMIT_PER_MINUTE=0 KAMIYO_SERVER__FAILED_AUTH_PER_MINUTE=0 \
    KAMIYO_SERVER__RESPONSE_CACHE_MS=0 \
    "$bin" replay xpl-2025-08-26 --serve >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 240); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "the server did not start:" >&2
  cat "$log" >&2
  return 1
}

# /ws is a WebSocket upgrade, which schemathesis does not speak (a plain GET is answered 426);
# its behaviour is tested with a real client in crates/api/tests/it/ws.rs.
run_st() {
  "$st" run "$1" --checks all "${@:2}" --exclude-path /ws --max-examples 25 --seed 20261204 --no-color
}

# 1. Keyless, on loopback: every check except ignored_auth (no key is needed there).
port=$(free_port)
serve "$work/open" "127.0.0.1:$port" "$work/open.log"
run_st "http://127.0.0.1:$port/openapi.json" --exclude-checks ignored_auth

# 2. Keyed, bound beyond loopback: a request without (or with a bad) key must be refused.
port=$(free_port)
key=$(KAMIYO_SERVER__DATA_DIR="$work/keyed" "$bin" keys create --name schemathesis 2>/dev/null | grep -o 'kmy_[0-9a-f]*_[0-9a-f]*' | head -1)
serve "$work/keyed" "0.0.0.0:$port" "$work/keyed.log"
run_st "http://127.0.0.1:$port/openapi.json" -H "Authorization: Bearer $key"
