#!/usr/bin/env bash
# The console (GET /admin/) in a real browser: Debian's chromium driven by
# playwright-core against a live `auth-broker serve` on a fresh SQLite store.
# Exits non-zero on the first failed step.
#
#   tests/console/run.sh
#
# Needs node (20 or newer) and /usr/bin/chromium (`apt-get install chromium`; set
# CHROMIUM to use another). No browser is downloaded: playwright-core drives the
# system one. node_modules live outside the clone, in
# /var/tmp/auth-broker-tools/console-node (CONSOLE_NODE_DIR), reinstalled from the
# committed package-lock.json when it changes; the npm registry is the only network
# access. Screenshots of every page, at 1280x800 and 390x844, go to
# $CARGO_TARGET_DIR/console-screenshots (CONSOLE_SCREENSHOTS).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/auth-broker-target}"
node_dir="${CONSOLE_NODE_DIR:-/var/tmp/auth-broker-tools/console-node}"
chromium="${CHROMIUM:-/usr/bin/chromium}"
shots="${CONSOLE_SCREENSHOTS:-$CARGO_TARGET_DIR/console-screenshots}"

command -v node >/dev/null || { echo "console: node is not installed" >&2; exit 1; }
[ -x "$chromium" ] || { echo "console: no browser at $chromium (apt-get install chromium)" >&2; exit 1; }

if ! cmp -s "$here/package-lock.json" "$node_dir/package-lock.json" 2>/dev/null \
  || [ ! -d "$node_dir/node_modules/playwright-core" ]; then
  echo "console: installing playwright-core into $node_dir"
  rm -rf "$node_dir"
  mkdir -p "$node_dir"
  cp "$here/package.json" "$here/package-lock.json" "$node_dir/"
  (cd "$node_dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
fi

(cd "$root" && cargo build -q -p auth-broker --bin auth-broker)
bin="$CARGO_TARGET_DIR/debug/auth-broker"

work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
export AUTH_BROKER_DATABASE_URL="sqlite://$work/auth-broker.db"

# The admin clients the scenario signs in with, made as an operator would: with the CLI.
field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(String(JSON.parse(s)[process.argv[1]])))' "$1"; }
client() {
  local created
  created=$("$bin" client create --json "$@")
  printf '%s %s' "$(printf '%s' "$created" | field client_id)" "$(printf '%s' "$created" | field client_secret)"
}
read -r OPS_ID OPS_SECRET <<<"$(client --name ops --scope 'admin:write')"
read -r AUDITOR_ID AUDITOR_SECRET <<<"$(client --name auditor --scope 'admin:read')"
# A session that expires while the test watches (expires_in 4).
read -r BRIEF_ID BRIEF_SECRET <<<"$(client --name brief --scope 'admin:read' --token-ttl 5)"
# One the test disables under a signed-in console (the next API call is a 401).
read -r VICTIM_ID VICTIM_SECRET <<<"$(client --name victim --scope 'admin:read')"
# No admin scope at all.
read -r PLAIN_ID PLAIN_SECRET <<<"$(client --name app --scope 'invoices:read')"
for v in OPS_ID OPS_SECRET AUDITOR_ID AUDITOR_SECRET BRIEF_ID BRIEF_SECRET VICTIM_ID VICTIM_SECRET PLAIN_ID PLAIN_SECRET; do
  [ -n "${!v:-}" ] || { echo "console: could not create the test's clients with the CLI ($v)" >&2; exit 1; }
done
export OPS_ID OPS_SECRET AUDITOR_ID AUDITOR_SECRET BRIEF_ID BRIEF_SECRET VICTIM_ID VICTIM_SECRET PLAIN_ID PLAIN_SECRET

AUTH_BROKER_LOG=warn "$bin" serve --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
server=$!
base=""
for _ in $(seq 100); do
  base=$(sed -n 's/^auth-broker listening on \(http:[^ ]*\).*/\1/p' "$work/serve.out")
  [ -n "$base" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
  sleep 0.1
done
[ -n "$base" ] || { echo "console: the broker did not start" >&2; cat "$work/serve.err" >&2; exit 1; }
echo "console: broker at $base, screenshots in $shots"

rm -rf "$shots"
mkdir -p "$shots"
status=0
BASE="$base" BIN="$bin" CHROMIUM="$chromium" SHOTS="$shots" NODE_DIR="$node_dir" \
  node "$here/console.test.mjs" || status=$?
if [ "$status" -ne 0 ]; then
  echo "console: failed; the broker's log:" >&2
  tail -n 30 "$work/serve.err" >&2
fi
exit "$status"
