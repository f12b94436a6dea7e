# Helpers the bench scripts share; each sources it from the project root (`. bench/common.sh`).

# new_client BIN DATABASE NAME [CLIENT CREATE ARGS...]: creates a client in the store;
# sets ID and SECRET.
new_client() {
  local bin=$1 db=$2 name=$3 out
  shift 3
  out=$("$bin" --database "$db" client create --name "$name" "$@" --json)
  ID=$(printf '%s\n' "$out" | sed -n 's/.*"client_id": "\([^"]*\)".*/\1/p')
  SECRET=$(printf '%s\n' "$out" | sed -n 's/.*"client_secret": "\([^"]*\)".*/\1/p')
}

# serve_on CORE BIN DATABASE OUT [SERVE ARGS...]: starts `serve` on a free loopback port,
# pinned to CORE, at log level warn, its stdout in OUT and stderr in OUT.err; waits for
# its banner; sets PID and URL (its token endpoint).
serve_on() {
  local core=$1 bin=$2 db=$3 out=$4
  shift 4
  AUTH_BROKER_LOG=warn taskset -c "$core" "$bin" --database "$db" serve --listen 127.0.0.1:0 "$@" >"$out" 2>"$out.err" &
  PID=$!
  for _ in $(seq 300); do grep -q 'token endpoint' "$out" 2>/dev/null && break; sleep 0.1; done
  URL="$(sed -n 's/^auth-broker listening on //p' "$out")/auth-broker/request-token"
}
