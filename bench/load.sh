#!/usr/bin/env bash
# Side-by-side load over loopback: auth-broker beside its peers and its limit, one run.
#
#   bench/load.sh
#
# Builds the release binary, then starts, each pinned to core 0:
#   auth-broker-sqlite    `serve` on a fresh SQLite store (ES256 JWTs)
#   auth-broker-postgres  `serve` on a fresh PostgreSQL database
#   auth-broker-1M        `serve` on a SQLite store holding 1,000,000 clients
#   bare                  the broker's own HTTP stack answering a fixed 250-byte JSON
#                         (crates/server/examples/bare.rs): the limit of the stack
# and hands them to ../shared/peers/compare.sh, which runs the peers (default:
# node-oidc-provider issuing ES256 JWTs) the same way and loads every target with
# `wrk -t1` pinned to core 1. Non-200 answers are counted; nothing that fails counts
# as fast. Then it prints the targets of the performance issue as measured ratios,
# with the ES256 signing rate of this machine's core from `openssl speed`, measured
# before the load and again after it (a VM's core is not equally fast all along: the
# limit takes the mean of the two, and both are printed so a drift is seen).
#
# Env: DURATION=20s CONNECTIONS=32 ROUNDS=1 WARMUP=5s PEERS="oidc-jwt"
#      MILLION=1000000 (0 skips that target)  PEERS_DIR=../shared/peers
#      PG_URL=postgres://postgres@127.0.0.1:5432  (a database is created and dropped)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/auth-broker-target}
export DURATION=${DURATION:-20s} CONNECTIONS=${CONNECTIONS:-32} ROUNDS=${ROUNDS:-1} WARMUP=${WARMUP:-5s}
export PEERS=${PEERS:-oidc-jwt}
MILLION=${MILLION:-1000000}
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/peers}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
log() { echo "[load] $*" >&2; }

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
[ -x "$PEERS_DIR/compare.sh" ] || { log "no peers harness at $PEERS_DIR (set PEERS_DIR)"; exit 2; }
log "building (release)"
cargo build --release -q -p auth-broker
cargo build --release -q -p auth-broker-server --example bare --example fill_clients
BIN=$CARGO_TARGET_DIR/release/auth-broker
EX=$CARGO_TARGET_DIR/release/examples

work=$(mktemp -d)
pids=()
pgdb=ab_load_$$
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null 2>&1 || true
  psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS ${pgdb}_1m WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# start LABEL DATABASE_URL: creates a client, starts serve on core 0; sets URL ID SECRET PID
start() {
  local label=$1 db=$2
  new_client "$BIN" "$db" "load-$label"
  serve_on 0 "$BIN" "$db" "$work/$label.out"
  pids+=("$PID")
  log "$label: $URL (pid $PID, idle RSS $(awk '/VmRSS/ {printf "%.1f MB", $2/1024}' /proc/$PID/status))"
}

args=() labels=() tpids=()
start auth-broker-sqlite "sqlite://$work/sqlite.db"
args+=("$URL" "$ID" "$SECRET"); labels+=(auth-broker-sqlite); tpids+=("$PID")

psql "$PG_URL/postgres" -qc "CREATE DATABASE $pgdb" >/dev/null
start auth-broker-postgres "$PG_URL/$pgdb"
args+=("$URL" "$ID" "$SECRET"); labels+=(auth-broker-postgres); tpids+=("$PID")

if [ "$MILLION" -gt 0 ]; then
  log "filling a store with $MILLION clients"
  "$EX/fill_clients" "sqlite://$work/million.db" "$MILLION" >&2
  start auth-broker-1M "sqlite://$work/million.db"
  args+=("$URL" "$ID" "$SECRET"); labels+=(auth-broker-1M); tpids+=("$PID")
  log "filling a PostgreSQL database with $MILLION clients"
  psql "$PG_URL/postgres" -qc "CREATE DATABASE ${pgdb}_1m" >/dev/null
  "$EX/fill_clients" "$PG_URL/${pgdb}_1m" "$MILLION" >&2
  start auth-broker-postgres-1M "$PG_URL/${pgdb}_1m"
  args+=("$URL" "$ID" "$SECRET"); labels+=(auth-broker-postgres-1M); tpids+=("$PID")
fi

taskset -c 0 "$EX/bare" 127.0.0.1:0 >"$work/bare.out" 2>&1 &
PID=$!; pids+=("$PID")
for _ in $(seq 100); do grep -q 'listening on' "$work/bare.out" 2>/dev/null && break; sleep 0.1; done
args+=("$(sed -n 's/^bare listening on //p' "$work/bare.out")/auth-broker/request-token" x x)
labels+=(bare); tpids+=("$PID")

es256() {
  taskset -c 0 openssl speed -seconds 3 ecdsap256 2>/dev/null | awk '/256 bits ecdsa \(nistp256\)/ {print $(NF-1)}'
}
log "ES256 signatures per second on one core (openssl speed), before the load"
es256_before=$(es256)
log "es256_signs_per_s=$es256_before"

export RESULTS_DIR=$work/results
EXTRA_LABELS="${labels[*]}" EXTRA_PIDS="${tpids[*]}" "$PEERS_DIR/compare.sh" "${args[@]}"

log "ES256 signatures per second on one core (openssl speed), after the load"
es256_after=$(es256)
log "es256_signs_per_s=$es256_after"

python3 - "$RESULTS_DIR/results.txt" "$es256_before" "$es256_after" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    p = line.split()
    if p:
        rows.setdefault(p[0], []).append(dict(x.split("=", 1) for x in p[1:] if "=" in x))
def med(label, key):
    vals = [float(r[key]) for r in rows.get(label, []) if r.get(key) not in (None, "NA")]
    return statistics.median(vals) if vals else None
es256_before, es256_after = float(sys.argv[2]), float(sys.argv[3])
es256 = (es256_before + es256_after) / 2
s, pg, m, pgm, bare, oidc = (med(l, "rps") for l in ("auth-broker-sqlite", "auth-broker-postgres", "auth-broker-1M", "auth-broker-postgres-1M", "bare", "oidc-jwt"))
limit = 1 / (1 / bare + 1 / es256) if bare else None
p50, p99 = med("auth-broker-sqlite", "p50_ms"), med("auth-broker-sqlite", "p99_ms")
non200 = sum(int(float(r.get("non200", 0))) for l in rows if l.startswith("auth-broker") for r in rows[l])
def line(name, value, target, ok):
    print(f"  {name:<44} {value:>12}   target {target:<8} {'ok' if ok else 'MISSED'}")
print()
print(f"es256 = mean of {es256_before:.0f} (before the load) and {es256_after:.0f} (after) = {es256:.0f} signs/s")
print(f"limit = 1/(1/bare + 1/es256) = 1/(1/{bare:.0f} + 1/{es256:.0f}) = {limit:.0f} tokens/s")
if oidc:
    line("auth-broker-sqlite / oidc-jwt", f"{s / oidc:.2f}x", ">= 8x", s / oidc >= 8)
line("auth-broker-sqlite / limit", f"{100 * s / limit:.0f} %", ">= 85 %", s / limit >= 0.85)
line("auth-broker-postgres / limit", f"{100 * pg / limit:.0f} %", ">= 85 %", pg / limit >= 0.85)
line("auth-broker-sqlite p99 / p50", f"{p99 / p50:.2f}", "<= 3", p99 / p50 <= 3)
pp50, pp99 = med("auth-broker-postgres", "p50_ms"), med("auth-broker-postgres", "p99_ms")
line("auth-broker-postgres p99 / p50", f"{pp99 / pp50:.2f}", "<= 3", pp99 / pp50 <= 3)
line("auth-broker-postgres / sqlite", f"{100 * pg / s:.0f} %", ">= 95 %", pg / s >= 0.95)
if m:
    line("auth-broker-1M / sqlite", f"{100 * m / s:.0f} %", ">= 90 %", m / s >= 0.9)
if pgm:
    line("auth-broker-postgres-1M / postgres", f"{100 * pgm / pg:.0f} %", ">= 90 %", pgm / pg >= 0.9)
line("non-200 answers from auth-broker", str(non200), "0", non200 == 0)
PY
log "RSS after the run: $(for i in "${!labels[@]}"; do printf '%s=%s ' "${labels[$i]}" "$(awk '/VmRSS/ {printf "%.1fMB", $2/1024}' /proc/${tpids[$i]}/status 2>/dev/null)"; done)"
