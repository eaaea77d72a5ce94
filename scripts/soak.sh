#!/usr/bin/env bash
# Soak run (issue 18): a fresh node under herald-bench's mixed load (unicast,
# broadcast, churn with resumes) for SOAK_DURATION, sampling the node every
# SOAK_EVERY seconds into samples.csv (RSS, Go heap, goroutines, open fds,
# SQLite WAL size) and drawing samples.svg. herald-bench checks loss,
# duplicates and gaps at the end (result.json, result.md).
#
#   scripts/soak.sh                                # 20 minutes, SQLite
#   SOAK_DURATION=60m scripts/soak.sh
#   HERALD_DATABASE_URL=postgres://…/test HERALD_REDIS_URL=redis://127.0.0.1:6379 scripts/soak.sh
#
# Environment (defaults): SOAK_DURATION (20m), SOAK_CONNS (5000),
# SOAK_RATE unicast/s (500), SOAK_BROADCAST broadcasts/s (1), SOAK_CHURN
# resumes/s (50), SOAK_EVERY seconds (10), SOAK_OUT directory (a new temp
# dir), HERALD_DATABASE_URL / HERALD_REDIS_URL (many-node mode on one node,
# with a new schema and key prefix).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${SOAK_DURATION:-20m}
conns=${SOAK_CONNS:-5000}
rate=${SOAK_RATE:-500}
bcast=${SOAK_BROADCAST:-1}
churn=${SOAK_CHURN:-50}
every=${SOAK_EVERY:-10}
out=${SOAK_OUT:-$(mktemp -d -t herald-soak.XXXXXX)}
pg=${HERALD_DATABASE_URL:-}
redis=${HERALD_REDIS_URL:-}
mkdir -p "$out"

secret=soak-secret-soak-secret-soak-secret-0123456
key=soak-api-key-0123456789
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
base=http://127.0.0.1:$port

echo "soak: building into $out" >&2
go build -o "$out/herald" ./cmd/herald
go build -o "$out/herald-bench" ./cmd/herald-bench

db=(--database "$out/herald.db")
wal="$out/herald.db-wal"
id=soak$(date +%s)
if [ -n "$pg" ]; then db=(--database "$pg" --database-schema "$id"); wal=""; fi
if [ -n "$redis" ]; then db+=(--redis "$redis" --redis-prefix "$id"); fi

node_pid="" bench_pid=""
cleanup() {
  [ -n "$bench_pid" ] && kill -TERM "$bench_pid" 2>/dev/null || true
  if [ -n "$node_pid" ]; then
    kill -TERM "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

HERALD_ENV=development "$out/herald" --addr "127.0.0.1:$port" "${db[@]}" \
  --jwt-secret "$secret" --api-keys "$key" --max-connections 25000 --log-level warn \
  >"$out/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "$base/readyz" >/dev/null || { echo "soak: node not ready (see $out/node.log)" >&2; exit 1; }

# sample: one CSV line from /metrics and the WAL file.
metric() { awk -v m="$1" '$1 == m { printf "%.0f", $2; exit }' "$out/metrics.txt"; }
echo "t_s,rss_bytes,heap_bytes,goroutines,open_fds,wal_bytes" >"$out/samples.csv"
sample() {
  curl -sf -o "$out/metrics.txt" "$base/metrics" || return 0
  local w=0
  if [ -n "$wal" ] && [ -f "$wal" ]; then w=$(stat -c %s "$wal"); fi
  echo "$1,$(metric process_resident_memory_bytes),$(metric go_memstats_heap_alloc_bytes),$(metric go_goroutines),$(metric process_open_fds),$w" >>"$out/samples.csv"
}

echo "soak: $duration of mixed load on $base: $conns connections, $rate unicast/s, $bcast broadcast/s, $churn resumes/s; results in $out" >&2
"$out/herald-bench" --url "$base" --jwt-secret "$secret" --api-key "$key" \
  --scenario mixed --conns "$conns" --rate "$rate" --broadcast-rate "$bcast" --churn-rate "$churn" \
  --duration "$duration" --server-pid "$node_pid" --metrics-url "$base/metrics" --quiet \
  --json >"$out/result.json" 2>"$out/bench.log" &
bench_pid=$!
start=$(date +%s)
while kill -0 "$bench_pid" 2>/dev/null; do
  sample $(( $(date +%s) - start ))
  for _ in $(seq "$every"); do kill -0 "$bench_pid" 2>/dev/null || break; sleep 1; done
done
status=0
wait "$bench_pid" || status=$?
bench_pid=""

python3 scripts/soak_plot.py "$out/samples.csv" "$out/samples.svg" | tee "$out/slopes.txt"
python3 - "$out/result.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
keys = ["expected", "delivered", "duplicates", "gaps", "misrouted", "reconnects", "reconnect_failures", "pass"]
print("soak result: " + ", ".join(f"{k} {d.get(k)}" for k in keys))
lat = d.get("latency", {})
print("latency ms: p50 %s, p99 %s, p99.9 %s, max %s" % (lat.get("p50_ms"), lat.get("p99_ms"), lat.get("p999_ms"), lat.get("max_ms")))
PY
echo "soak: samples.csv, samples.svg, result.json in $out" >&2
exit "$status"
