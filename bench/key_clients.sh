#!/usr/bin/env bash
# Tokens/s by client authentication method, one broker, one run: client_secret_basic
# (../shared/peers/token.lua) beside private_key_jwt (a new ES256 assertion per
# request), Basic with a DPoP proof (a new ES256 proof per request), and both
# (bench/keybound.lua; assertions and proofs made beforehand by the make_assertions
# example, since a load generator cannot sign).
#
#   bench/key_clients.sh [BIN]
#
# The broker is pinned to core 0 and wrk (-t1) to core 1, as in bench/load.sh.
# Env: DURATION=8s CONNECTIONS=32 DATABASE=sqlite (or a postgres:// server URL,
# for a fresh database on it) ASSERTIONS=400000
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/auth-broker-target}"
DURATION=${DURATION:-8s} CONNECTIONS=${CONNECTIONS:-32} DATABASE=${DATABASE:-sqlite}
N=${ASSERTIONS:-400000}
LUA=$PWD/../shared/peers/token.lua
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build -q --release -p auth-broker
cargo build -q --release -p auth-broker-server --example make_assertions
BIN=${1:-$CARGO_TARGET_DIR/release/auth-broker}
MAKE=$CARGO_TARGET_DIR/release/examples/make_assertions
w=$(mktemp -d)
if [ "$DATABASE" = sqlite ]; then db="sqlite://$w/s.db"; else
  db="$DATABASE/kc_$$_$RANDOM"; psql "$DATABASE/postgres" -qc "CREATE DATABASE ${db##*/}" >/dev/null; fi
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$w"' EXIT
new_client "$BIN" "$db" basic
id=$ID secret=$SECRET
serve_on 0 "$BIN" "$db" "$w/out"
pid=$PID url=$URL
"$MAKE" "$w" x "$url" 0
new_client "$BIN" "$db" signer --auth-method private_key_jwt --jwks "$w/jwks.json"
kid=$ID
"$MAKE" "$w" "$kid" "$url" "$N" 300 "$N"
basic=$(printf '%s:%s' "$id" "$secret" | base64 -w0)
taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d3s -s "$LUA" "$url" -- "$id" "$secret" >/dev/null
run() {  # LABEL LUA ARGS...
  local label=$1; shift
  printf '%-20s ' "$label"
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$@" |
    sed -n 's/^WRK_RESULT .*\(rps=[0-9.]*\) p50_ms=\([0-9.]*\).*p99_ms=\([0-9.]*\).*\(non200=[0-9]*\).*/\1 p50_ms=\2 p99_ms=\3 \4/p'
}
run client_secret_basic "$LUA" "$url" -- "$id" "$secret"
KB=$PWD/bench/keybound.lua
run private_key_jwt "$KB" "$url" -- "$w/assertions.txt" -
run basic+DPoP "$KB" "$url" -- - "$w/proofs.txt" "$basic"
# The proofs of the run before are spent (used once): the same file, from the start,
# would be refused as replays; a fresh set for this run.
"$MAKE" "$w" "$kid" "$url" "$N" 300 "$N"
run private_key_jwt+DPoP "$KB" "$url" -- "$w/assertions.txt" "$w/proofs.txt"
run client_secret_basic "$LUA" "$url" -- "$id" "$secret"
