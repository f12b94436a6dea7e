#!/usr/bin/env bash
# A/B over loopback: two builds of `auth-broker`, each in turn, the load.sh layout.
#
#   bench/ab.sh BIN_A BIN_B [PAIRS]
#
# For each of PAIRS (default 3) rounds, starts BIN_A then BIN_B on a fresh SQLite store
# (DATABASE=postgres://... for a fresh PostgreSQL database instead), pinned to core 0,
# warms up 3 s, then loads it for DURATION (default 8s) with `wrk -t1 -cCONNECTIONS`
# pinned to core 1 and ../shared/peers/token.lua, and prints one line per run. Runs
# alternate so that drift of the machine hits both builds alike: compare the ranges.
# To build the "before" binary: git worktree add /tmp/before <commit> &&
#   (cd /tmp/before && cargo build --release -p auth-broker)  (a target dir of its own).
#
# Env: DURATION=8s CONNECTIONS=32 DATABASE=sqlite PG_URL=postgres://postgres@127.0.0.1:5432
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,14p' "$0" >&2; exit 2; }
A=$1 B=$2 PAIRS=${3:-3}
DURATION=${DURATION:-8s} CONNECTIONS=${CONNECTIONS:-32} DATABASE=${DATABASE:-sqlite}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
LUA=${LUA:-$PWD/../shared/peers/token.lua}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
[ -f "$LUA" ] || { echo "no $LUA (set LUA)" >&2; exit 2; }

one() {  # LABEL BIN
  local w pid url db out id secret
  w=$(mktemp -d)
  if [ "$DATABASE" = sqlite ]; then db="sqlite://$w/s.db"; else
    db="$PG_URL/ab_$$_$RANDOM"; psql "$PG_URL/postgres" -qc "CREATE DATABASE ${db##*/}" >/dev/null; fi
  out=$("$2" --database "$db" client create --name ab --json)
  id=$(printf '%s\n' "$out" | sed -n 's/.*"client_id": "\([^"]*\)".*/\1/p')
  secret=$(printf '%s\n' "$out" | sed -n 's/.*"client_secret": "\([^"]*\)".*/\1/p')
  AUTH_BROKER_LOG=warn taskset -c 0 "$2" --database "$db" serve --listen 127.0.0.1:0 >"$w/out" 2>/dev/null &
  pid=$!
  for _ in $(seq 100); do grep -q 'listening on' "$w/out" 2>/dev/null && break; sleep 0.1; done
  url="$(sed -n 's/^auth-broker listening on //p' "$w/out")/auth-broker/request-token"
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d3s -s "$LUA" "$url" -- "$id" "$secret" >/dev/null
  printf '%s ' "$1"
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$LUA" "$url" -- "$id" "$secret" |
    sed -n 's/^WRK_RESULT .*\(rps=[0-9.]*\) p50_ms=\([0-9.]*\).*p99_ms=\([0-9.]*\).*\(non200=[0-9]*\).*/\1 p50_ms=\2 p99_ms=\3 \4/p'
  kill "$pid"; wait "$pid" 2>/dev/null || true
  [ "$DATABASE" = sqlite ] || psql "$PG_URL/postgres" -qc "DROP DATABASE ${db##*/} WITH (FORCE)" >/dev/null
  rm -rf "$w"
}

for _ in $(seq "$PAIRS"); do
  one A "$A"
  one B "$B"
done
