#!/usr/bin/env bash
# Start a local 3-node Herald cluster against the PostgreSQL and Redis on this
# machine (loopback only). Ctrl-C stops all three nodes (each drains first).
#
#   scripts/cluster.sh                 # nodes on 127.0.0.1:8081, :8082, :8083
#   PG_URL=postgres://user@host/db REDIS_URL=redis://host:6379/0 scripts/cluster.sh
#
# Put any load balancer in front (no sticky sessions are needed for
# WebSocket and SSE; Socket.IO long-polling needs stickiness on the sid).
set -euo pipefail
cd "$(dirname "$0")/.."
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
SCHEMA=${SCHEMA:-herald_local}
SECRET=${HERALD_JWT_SECRET:-local-cluster-secret-0123456789abcdef}
API_KEY=${HERALD_API_KEYS:-local-cluster-key-0123456789}
mkdir -p bin
go build -o bin/herald ./cmd/herald
pids=()
cleanup() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait; }
trap cleanup EXIT INT TERM
for i in 1 2 3; do
  HERALD_ENV=development bin/herald \
    --addr "127.0.0.1:808$i" --node-id "node$i" \
    --database "$PG_URL" --database-schema "$SCHEMA" \
    --redis "$REDIS_URL" \
    --jwt-secret "$SECRET" --api-keys "$API_KEY" \
    --log-format text 2>&1 | sed "s/^/[node$i] /" &
  pids+=($!)
done
echo "3 nodes: http://127.0.0.1:8081 http://127.0.0.1:8082 http://127.0.0.1:8083 (API key: $API_KEY)"
wait
