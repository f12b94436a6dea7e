#!/usr/bin/env bash
# What the store does per token on PostgreSQL at steady state: one broker on a fresh
# database, loaded with client_secret_basic token requests (wrk, as bench/load.sh),
# and PostgreSQL's own counters read before and after the load: transactions committed
# in the database (pg_stat_database.xact_commit: every statement outside a transaction
# block is one) and reads of the clients table (pg_stat_user_tables: index and
# sequential scans). Printed per 1,000 tokens. pg_stat_statements would name each
# statement, but it must be preloaded (shared_preload_libraries, a server restart),
# which these machines are not set up with; these counters are always there.
#
#   bench/store_work.sh [BIN]        # default: this tree's release binary
#
# Env: DURATION=8s CONNECTIONS=32 PG_URL=postgres://postgres@127.0.0.1:5432
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/auth-broker-target}"
DURATION=${DURATION:-8s} CONNECTIONS=${CONNECTIONS:-32}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
LUA=$PWD/../shared/peers/token.lua
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
if [ -z "${1:-}" ]; then cargo build -q --release -p auth-broker; fi
BIN=${1:-$CARGO_TARGET_DIR/release/auth-broker}
name=sw_$$_$RANDOM
psql "$PG_URL/postgres" -qc "CREATE DATABASE $name" >/dev/null
w=$(mktemp -d); pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null; rm -rf "$w"' EXIT
db="$PG_URL/$name"
out=$("$BIN" --database "$db" client create --name load --json)
id=$(printf '%s\n' "$out" | sed -n 's/.*"client_id": "\([^"]*\)".*/\1/p')
secret=$(printf '%s\n' "$out" | sed -n 's/.*"client_secret": "\([^"]*\)".*/\1/p')
AUTH_BROKER_LOG=warn taskset -c 0 "$BIN" --database "$db" serve --listen 127.0.0.1:0 >"$w/out" 2>/dev/null &
pid=$!
for _ in $(seq 100); do grep -q 'listening on' "$w/out" 2>/dev/null && break; sleep 0.1; done
url="$(sed -n 's/^auth-broker listening on //p' "$w/out")/auth-broker/request-token"
taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d3s -s "$LUA" "$url" -- "$id" "$secret" >/dev/null
counters() {
  sleep 1.2  # the statistics of other sessions reach the views within a second
  psql "$db" -Atc "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
    (SELECT coalesce(idx_scan, 0) + coalesce(seq_scan, 0) FROM pg_stat_user_tables WHERE relname = 'clients')"
}
before=$(counters)
res=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$LUA" "$url" -- "$id" "$secret" | grep WRK_RESULT)
after=$(counters)
n=$(printf '%s\n' "$res" | sed -n 's/.*requests=\([0-9]*\).*/\1/p')
python3 - "$before" "$after" "$n" "$res" <<'PY'
import sys
b = [int(x) for x in sys.argv[1].split('|')]
a = [int(x) for x in sys.argv[2].split('|')]
n = int(sys.argv[3])
print(sys.argv[4])
print(f"tokens {n}: transactions {a[0]-b[0]} ({(a[0]-b[0])*1000/n:.1f} per 1,000 tokens, "
      f"the counter reads and the broker's background work included), "
      f"clients table reads {a[1]-b[1]} ({(a[1]-b[1])*1000/n:.1f} per 1,000 tokens)")
PY
