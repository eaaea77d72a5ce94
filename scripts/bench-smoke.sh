#!/usr/bin/env bash
# Smoke run of the load generator: builds herald and herald-bench, starts
# `herald --dev` on a spare loopback port with a throwaway database, runs a
# short unicast scenario and fails (non-zero exit) on any loss, duplicate or
# gap. CI calls it; it takes about 15 seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
herald_pid=""
cleanup() {
  if [ -n "$herald_pid" ] && kill -0 "$herald_pid" 2>/dev/null; then
    kill -TERM "$herald_pid" 2>/dev/null || true
    wait "$herald_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/herald" ./cmd/herald
go build -o "$tmp/herald-bench" ./cmd/herald-bench

# A spare port: the first of a few random candidates nobody listens on.
port=""
for _ in $(seq 1 50); do
  p=$(( 20000 + RANDOM % 12000 ))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "bench-smoke: no spare port found" >&2; exit 1; }

secret="smoke-secret-$(date +%s%N)-0123456789abcdef"
apikey="smoke-api-key-$(date +%s%N)"
HERALD_ENV=development "$tmp/herald" --dev --addr "127.0.0.1:$port" --database "$tmp/herald.db" \
  --jwt-secret "$secret" --api-keys "$apikey" --log-level warn >"$tmp/herald.out" 2>"$tmp/herald.err" &
herald_pid=$!

for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  if ! kill -0 "$herald_pid" 2>/dev/null; then
    echo "bench-smoke: herald exited:" >&2; cat "$tmp/herald.err" >&2; exit 1
  fi
  sleep 0.1
done

status=0
"$tmp/herald-bench" --url "http://127.0.0.1:$port" --scenario unicast --conns 300 --duration 3s \
  --jwt-secret "$secret" --api-key "$apikey" --server-pid "$herald_pid" --quiet --markdown --json || status=$?
if [ "$status" -ne 0 ]; then
  echo "bench-smoke: herald-bench exited with $status; herald's log:" >&2
  tail -n 50 "$tmp/herald.err" >&2
fi
exit "$status"
