#!/usr/bin/env bash
# What the store does per token on PostgreSQL at steady state: one broker on a fresh
# database, loaded with client_secret_basic token requests (wrk, as bench/load.sh),
# and PostgreSQL's own counters read before and after the load: transactions committed
# in the database (pg_stat_database.xact_commit: every statement outside a transaction
# block is one) and reads of the clients table (pg_stat_user_tables: index and
# sequential scans). Printed per 1,000 tokens. When the server preloads
# pg_stat_statements, also every statement the database ran during the load, with its
# calls per 1,000 tokens (the extension is created in the fresh database and reset
# before the load). Preloading it takes a restart of the server, so it is opt-in:
# PG_STAT_STATEMENTS=enable runs `ALTER SYSTEM SET shared_preload_libraries` and
# `pg_ctlcluster VERSION main restart` first (only on a server that is yours to restart).
#
#   bench/store_work.sh [BIN]        # default: this tree's release binary
#
# Env: DURATION=8s CONNECTIONS=32 PG_URL=postgres://postgres@127.0.0.1:5432
#      PG_STAT_STATEMENTS=enable
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/auth-broker-target}"
DURATION=${DURATION:-8s} CONNECTIONS=${CONNECTIONS:-32}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
LUA=$PWD/../shared/peers/token.lua
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
if [ -z "${1:-}" ]; then cargo build -q --release -p auth-broker; fi
BIN=${1:-$CARGO_TARGET_DIR/release/auth-broker}
if [ "${PG_STAT_STATEMENTS:-}" = enable ] &&
  ! psql "$PG_URL/postgres" -Atc 'SHOW shared_preload_libraries' | grep -q pg_stat_statements; then
  psql "$PG_URL/postgres" -qc "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster "$version" main restart
  for _ in $(seq 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
statements=no
psql "$PG_URL/postgres" -Atc 'SHOW shared_preload_libraries' | grep -q pg_stat_statements && statements=yes
name=sw_$$_$RANDOM
psql "$PG_URL/postgres" -qc "CREATE DATABASE $name" >/dev/null
w=$(mktemp -d); pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null; rm -rf "$w"' EXIT
db="$PG_URL/$name"
new_client "$BIN" "$db" load
id=$ID secret=$SECRET
serve_on 0 "$BIN" "$db" "$w/out"
pid=$PID url=$URL
taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d3s -s "$LUA" "$url" -- "$id" "$secret" >/dev/null
counters() {
  sleep 1.2  # the statistics of other sessions reach the views within a second
  psql "$db" -Atc "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
    (SELECT coalesce(idx_scan, 0) + coalesce(seq_scan, 0) FROM pg_stat_user_tables WHERE relname = 'clients')"
}
if [ $statements = yes ]; then
  psql "$db" -qc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
  psql "$db" -qAtc "SELECT pg_stat_statements_reset()" >/dev/null
fi
before=$(counters)
res=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$LUA" "$url" -- "$id" "$secret" | grep WRK_RESULT)
after=$(counters)
n=$(printf '%s\n' "$res" | sed -n 's/.*requests=\([0-9]*\).*/\1/p')
if [ $statements = yes ]; then
  echo "pg_stat_statements, this database, during the load ($n tokens): calls, per 1,000 tokens, statement"
  psql "$db" -Atc "SELECT s.calls, round(s.calls * 1000.0 / $n, 3), left(regexp_replace(s.query, '\s+', ' ', 'g'), 110)
    FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
    WHERE d.datname = current_database() ORDER BY s.calls DESC" | sed 's/^/  /'
else
  echo "(pg_stat_statements is not preloaded on this server: PG_STAT_STATEMENTS=enable to name the statements)"
fi
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
