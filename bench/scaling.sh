#!/usr/bin/env bash
# Scaling and memory figures for the token endpoint (SQLite unless noted), over loopback.
#
#   bench/scaling.sh
#
# 1. one broker pinned to core 0, wrk on core 1 (the load.sh layout);
# 2. one broker on both cores, wrk on both cores too (they share: this machine has 2);
# 3. two brokers on one PostgreSQL database, each pinned to core 0, wrk on core 1
#    loading both at once (one wrk each, half the connections each);
# 4. RSS of one broker idle and after each of three 60 s loads (1,000,000+ requests).
# Env: DURATION=15s CONNECTIONS=32 PG_URL=postgres://postgres@127.0.0.1:5432
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/auth-broker-target}
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-32}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p auth-broker
BIN=$CARGO_TARGET_DIR/release/auth-broker
work=$(mktemp -d)
pids=()
pgdb=ab_scale_$$
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

client() {  # DATABASE -> sets AUTH_HEADER
  new_client "$BIN" "$1" "scale-$RANDOM$RANDOM"
  export AUTH_HEADER="Basic $(printf '%s:%s' "$ID" "$SECRET" | base64 -w0)"
}
serve() {  # CPUS DATABASE NAME -> sets URL PID
  serve_on "$1" "$BIN" "$2" "$work/$3.out"
  pids+=("$PID")
}
load() {  # CPUS CONNECTIONS DURATION URL -> prints rps p99 non2xx
  local out
  out=$(taskset -c "$1" wrk -t"$(( $(echo "$1" | tr ',' '\n' | wc -l) ))" -c"$2" -d"$3" --latency -s bench/token.lua "$4")
  printf '%s %s %s\n' "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
    "$(echo "$out" | awk '$1=="99%" {print $2}')" "$(echo "$out" | awk '/Non-2xx/ {print $NF}')"
}
rss() { awk '/VmRSS/ {printf "%.1f MB", $2/1024}' "/proc/$1/status"; }

db=sqlite://$work/one.db
client "$db"
serve 0 "$db" one
load 1 "$CONNECTIONS" 3s "$URL" >/dev/null
read -r r p n < <(load 1 "$CONNECTIONS" "$DURATION" "$URL")
echo "1 broker, 1 core:   rps=$r p99=$p non2xx=${n:-0}"
kill "$PID"; wait "$PID" 2>/dev/null || true

serve 0,1 "$db" two
load 0,1 "$CONNECTIONS" 3s "$URL" >/dev/null
read -r r p n < <(load 0,1 "$CONNECTIONS" "$DURATION" "$URL")
echo "1 broker, 2 cores (shared with wrk): rps=$r p99=$p non2xx=${n:-0}"
kill "$PID"; wait "$PID" 2>/dev/null || true

psql "$PG_URL/postgres" -qc "CREATE DATABASE $pgdb" >/dev/null
pg=$PG_URL/$pgdb
client "$pg"
serve 0 "$pg" pga; a=$URL
serve 0 "$pg" pgb; b=$URL
load 1 "$CONNECTIONS" 3s "$a" >/dev/null
read -r r1 p1 n1 < <(load 1 "$CONNECTIONS" "$DURATION" "$a")
echo "1 broker on PostgreSQL, 1 core: rps=$r1 p99=$p1 non2xx=${n1:-0}"
half=$(( CONNECTIONS / 2 ))
load 1 "$half" "$DURATION" "$a" >"$work/ra" &
la=$!
load 1 "$half" "$DURATION" "$b" >"$work/rb" &
lb=$!
wait "$la" "$lb"
read -r ra pa na <"$work/ra"; read -r rb pb nb <"$work/rb"
echo "2 brokers on one PostgreSQL, sharing core 0: rps=$(python3 -c "print(round($ra + $rb, 1))") ($ra + $rb) p99=$pa/$pb non2xx=${na:-0}/${nb:-0}"

db=sqlite://$work/mem.db
client "$db"
serve 0 "$db" mem
echo "RSS idle: $(rss "$PID")"
total=0
for round in 1 2 3; do
  n=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d60s -s bench/token.lua "$URL" | awk '/requests in/ {print $1}')
  total=$((total + n))
  echo "RSS after $total token requests: $(rss "$PID")"
done
