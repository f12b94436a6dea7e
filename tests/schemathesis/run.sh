#!/usr/bin/env bash
# schemathesis, with every check, against a live `auth-broker serve` and the OpenAPI
# document it serves. Exits non-zero on any finding.
#
#   tests/schemathesis/run.sh [extra schemathesis run options]
#
# The virtualenv lives under the cargo target directory (outside the clone) and is
# rebuilt when requirements.txt changes; PyPI is the only network access.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/auth-broker-target}"
venv="$CARGO_TARGET_DIR/schemathesis-venv"

if ! cmp -s "$here/requirements.txt" "$venv/requirements.txt" 2>/dev/null; then
  echo "schemathesis: creating $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/requirements.txt"
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
# One run per token format: JWTs (the default) and opaque tokens answer token-info and
# introspection differently. AB_TOKEN_FORMATS="jwt" runs one.
status=0
for format in ${AB_TOKEN_FORMATS:-jwt opaque}; do
  # A fresh store per run: the admin API's stateful tests change what they find,
  # the schemathesis client itself included (its secret, its settings).
  export AUTH_BROKER_DATABASE_URL="sqlite://$work/auth-broker-$format.db"
  # The client schemathesis authenticates as: Basic for the form endpoints, its token
  # for token-info and the admin API (admin:write).
  created=$("$bin" client create --name schemathesis --scope "read write admin:write" --json)
  AB_CLIENT_ID=$(printf '%s' "$created" | python3 -c 'import json, sys; print(json.load(sys.stdin)["client_id"])')
  AB_CLIENT_SECRET=$(printf '%s' "$created" | python3 -c 'import json, sys; print(json.load(sys.stdin)["client_secret"])')
  export AB_CLIENT_ID AB_CLIENT_SECRET
  : >"$work/serve.out"
  # schemathesis sends thousands of wrong credentials (negative cases, and ignored_auth
  # replacing the right ones) from one address; with the default limit of 20 failures
  # a minute the broker would answer 429 to most of them and the run would test the
  # rate limiter instead of the endpoints. Successes are never limited, whatever this is.
  AUTH_BROKER_LOG=warn "$bin" serve --listen 127.0.0.1:0 --token-format "$format" \
    --auth-failures-per-minute 1000000 >"$work/serve.out" 2>"$work/serve.err" &
  server=$!
  base=""
  for _ in $(seq 100); do
    base=$(sed -n 's/^auth-broker listening on \(http:[^ ]*\).*/\1/p' "$work/serve.out")
    [ -n "$base" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$base" ] || { echo "schemathesis: the broker did not start" >&2; cat "$work/serve.err" >&2; exit 1; }
  echo "schemathesis: $format tokens, broker at $base"

  AB_ACCESS_TOKEN=$(curl -sf -u "$AB_CLIENT_ID:$AB_CLIENT_SECRET" -d grant_type=client_credentials \
    "$base/auth-broker/request-token" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  export AB_ACCESS_TOKEN

  # The checked-in document, which a cargo test keeps equal to what the broker serves:
  # loaded from the broker's URL, schemathesis leaves out the operation that serves it.
  run=0
  (cd "$work" && "$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" \
    run "$root/openapi.json" --url "$base" --checks all --no-color \
    --report junit --report-dir "$work/report-$format" "$@") || run=$?
  if [ "$run" -ne 0 ]; then
    echo "schemathesis: findings with $format tokens (exit $run); broker log:" >&2
    tail -n 50 "$work/serve.err" >&2
    status=$run
  fi
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=""
done
exit "$status"
