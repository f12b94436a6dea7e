#!/usr/bin/env bash
# Load figure for the token endpoint over loopback.
#
#   bench/load.sh [DURATION=20s] [CONNECTIONS=32]
#
# Builds the release binary, starts `auth-broker serve` on a fresh SQLite store pinned
# to core 0, and loads it with wrk (one thread) pinned to core 1. Prints wrk's report
# and one summary line; non-2xx answers are counted and reported, so errors can
# never pass for speed. Set DATABASE=postgres://... to measure PostgreSQL instead.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-20s}
CONNECTIONS=${2:-32}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/auth-broker-target}
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
cargo build --release -p auth-broker >&2
BIN=$CARGO_TARGET_DIR/release/auth-broker
work=$(mktemp -d)
DATABASE=${DATABASE:-sqlite://$work/load.db}
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT

created=$("$BIN" --database "$DATABASE" client create --name "load-$$" --json)
id=$(printf '%s' "$created" | sed -E 's/.*"client_id": "([^"]+)".*/\1/;t;d' | head -1)
[ -n "$id" ] || id=$(printf '%s' "$created" | grep '"client_id"' | sed -E 's/.*: "([^"]+)".*/\1/')
secret=$(printf '%s' "$created" | grep '"client_secret"' | sed -E 's/.*: "([^"]+)".*/\1/')

AUTH_BROKER_LOG=warn taskset -c 0 "$BIN" --database "$DATABASE" serve --listen 127.0.0.1:0 >"$work/serve.out" &
pid=$!
for _ in $(seq 100); do grep -q 'listening on' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^auth-broker listening on //p' "$work/serve.out")
url="$base/auth-broker/request-token"

code=$(curl -s -o /dev/null -w '%{http_code}' -u "$id:$secret" -d grant_type=client_credentials "$url")
[ "$code" = 200 ] || { echo "sanity request got $code, not 200" >&2; exit 1; }

export AUTH_HEADER="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d5s -s bench/token.lua "$url" >/dev/null   # warm-up
out=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/token.lua "$url")
echo "$out"
rss=$(awk '/VmRSS/ {print $2/1024 " MB"}' /proc/$pid/status)
rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
p50=$(echo "$out" | awk '$1=="50%" {print $2}')
p99=$(echo "$out" | awk '$1=="99%" {print $2}')
non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
echo "auth-broker store=${DATABASE%%:*} connections=$CONNECTIONS duration=$DURATION rps=$rps p50=$p50 p99=$p99 non2xx=${non2xx:-0} rss=$rss"
