#!/usr/bin/env bash
# What `serve --otlp-endpoint` costs a token request: one broker on SQLite loaded
# three times (wrk -t1, ../shared/peers/token.lua), pinned to core 0 as in
# bench/load.sh, with wrk and a small OTLP/HTTP sink (bench/otlp_sink.py, which
# answers 200 and counts what it is sent) on core 1:
#   off         no --otlp-endpoint
#   every span  --otlp-endpoint, every request's span exported
#   1 %         --otlp-endpoint with OTEL_TRACES_SAMPLER=traceidratio, ARG=0.01
# The broker's export thread shares core 0 with it, so its cost is in the figure.
#
#   bench/otlp.sh [BIN]
#
# Env: DURATION=10s CONNECTIONS=32
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/auth-broker-target}"
DURATION=${DURATION:-10s} CONNECTIONS=${CONNECTIONS:-32}
LUA=$PWD/../shared/peers/token.lua
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
[ $# -gt 0 ] || cargo build -q --release -p auth-broker
BIN=${1:-$CARGO_TARGET_DIR/release/auth-broker}
w=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$w"' EXIT

taskset -c 1 python3 bench/otlp_sink.py "$w/sink" &
pids+=($!)
for _ in $(seq 50); do [ -s "$w/sink.port" ] && break; sleep 0.1; done
sink="http://127.0.0.1:$(cat "$w/sink.port")"
db="sqlite://$w/s.db"
new_client "$BIN" "$db" otlp
id=$ID secret=$SECRET

run() {  # LABEL [SAMPLER RATIO] -- [SERVE ARGS ...]
  local label=$1; shift
  local sampler=()
  [ "$1" = -- ] || { sampler=(OTEL_TRACES_SAMPLER="$1" OTEL_TRACES_SAMPLER_ARG="$2"); shift 2; }
  shift
  [ ${#sampler[@]} -eq 0 ] || export "${sampler[@]}"
  serve_on 0 "$BIN" "$db" "$w/out" "$@"
  unset OTEL_TRACES_SAMPLER OTEL_TRACES_SAMPLER_ARG
  local pid=$PID url=$URL
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d3s -s "$LUA" "$url" -- "$id" "$secret" >/dev/null
  : >"$w/sink.count"
  printf '%-12s ' "$label"
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$LUA" "$url" -- "$id" "$secret" |
    sed -n 's/^WRK_RESULT .*\(rps=[0-9.]*\) p50_ms=\([0-9.]*\).*p99_ms=\([0-9.]*\).*\(non200=[0-9]*\).*/\1 p50_ms=\2 p99_ms=\3 \4/p' | tr -d '\n'
  sleep 1
  echo " exports=$(wc -l <"$w/sink.count") bytes=$(awk '{s+=$1} END {print s+0}' "$w/sink.count")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
run off -- 
run "every span" -- --otlp-endpoint "$sink"
run "1 %" traceidratio 0.01 -- --otlp-endpoint "$sink"
run off -- 
