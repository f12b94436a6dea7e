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
# Each line also gives the broker's CPU time per request (utime + stime from
# /proc/PID/stat over the run, in µs) and the machine's steal time over the run (ticks
# of 10 ms the hypervisor gave to others): on a VM whose neighbours take a third of the
# core, tokens/s swings by 2x while CPU per request moves far less; compare the runs
# with little steal.
# To build the "before" binary: git worktree add /tmp/before <commit> &&
#   (cd /tmp/before && cargo build --release -p auth-broker)  (a target dir of its own).
#
# Env: DURATION=8s CONNECTIONS=32 DATABASE=sqlite PG_URL=postgres://postgres@127.0.0.1:5432
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
[ $# -ge 2 ] || { sed -n '2,14p' "$0" >&2; exit 2; }
A=$1 B=$2 PAIRS=${3:-3}
DURATION=${DURATION:-8s} CONNECTIONS=${CONNECTIONS:-32} DATABASE=${DATABASE:-sqlite}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
LUA=${LUA:-$PWD/../shared/peers/token.lua}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
[ -f "$LUA" ] || { echo "no $LUA (set LUA)" >&2; exit 2; }

one() {  # LABEL BIN
  local w db
  w=$(mktemp -d)
  if [ "$DATABASE" = sqlite ]; then db="sqlite://$w/s.db"; else
    db="$PG_URL/ab_$$_$RANDOM"; psql "$PG_URL/postgres" -qc "CREATE DATABASE ${db##*/}" >/dev/null; fi
  new_client "$2" "$db" ab
  serve_on 0 "$2" "$db" "$w/out"
  local pid=$PID url=$URL id=$ID secret=$SECRET
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d3s -s "$LUA" "$url" -- "$id" "$secret" >/dev/null
  local cpu0 steal0 res cpu1 steal1 n
  cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  steal0=$(awk '/^cpu / {print $9}' /proc/stat)
  res=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$LUA" "$url" -- "$id" "$secret" | grep '^WRK_RESULT')
  cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  steal1=$(awk '/^cpu / {print $9}' /proc/stat)
  n=$(printf '%s\n' "$res" | sed -n 's/.* requests=\([0-9]*\).*/\1/p')
  printf '%s %s cpu_us_per_request=%s steal_ticks=%s\n' "$1" \
    "$(printf '%s\n' "$res" | sed -n 's/^WRK_RESULT .*\(rps=[0-9.]*\) p50_ms=\([0-9.]*\).*p99_ms=\([0-9.]*\).*\(non200=[0-9]*\).*/\1 p50_ms=\2 p99_ms=\3 \4/p')" \
    "$(awk -v c="$((cpu1 - cpu0))" -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", c * 1e6 / hz / n}')" \
    "$((steal1 - steal0))"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  [ "$DATABASE" = sqlite ] || psql "$PG_URL/postgres" -qc "DROP DATABASE ${db##*/} WITH (FORCE)" >/dev/null
  rm -rf "$w"
}

for _ in $(seq "$PAIRS"); do
  one A "$A"
  one B "$B"
done
