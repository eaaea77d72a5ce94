#!/usr/bin/env bash
# Soak run (issue 18): fresh nodes under herald-bench's mixed load (unicast,
# broadcast, churn with resumes) for SOAK_DURATION, sampling each node every
# SOAK_EVERY seconds into samples.csv (one row per node: RSS, Go heap,
# goroutines, open fds, SQLite WAL size) and drawing samples.svg.
# herald-bench checks loss, duplicates and gaps at the end (result.json)
# and names the slowest deliveries with their context.
#
#   scripts/soak.sh                                # 20 minutes, SQLite
#   SOAK_DURATION=60m scripts/soak.sh
#   HERALD_DATABASE_URL=postgres://…/test HERALD_REDIS_URL=redis://127.0.0.1:6379 SOAK_NODES=2 scripts/soak.sh
#
# Environment (defaults): SOAK_DURATION (20m), SOAK_CONNS (5000),
# SOAK_RATE unicast/s (500), SOAK_BROADCAST broadcasts/s (1), SOAK_CHURN
# resumes/s (50), SOAK_EVERY seconds (10), SOAK_OUT directory (a new temp
# dir), HERALD_DATABASE_URL / HERALD_REDIS_URL (many-node mode, with a new
# schema and key prefix), SOAK_NODES (1; more needs both URLs: the nodes
# share the schema and prefix, and connections and publishers are spread
# over them).
# Everything runs inside main, which bash reads whole before it starts: a
# run survives edits of this file.
set -euo pipefail

main() {
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
nodes=${SOAK_NODES:-1}
mkdir -p "$out"
if [ "$nodes" -gt 1 ] && { [ -z "$pg" ] || [ -z "$redis" ]; }; then
  echo "soak: SOAK_NODES=$nodes needs HERALD_DATABASE_URL and HERALD_REDIS_URL" >&2
  exit 2
fi

secret=soak-secret-soak-secret-soak-secret-0123456
key=soak-api-key-0123456789
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
echo "soak: building into $out" >&2
go build -o "$out/herald" ./cmd/herald
go build -o "$out/herald-bench" ./cmd/herald-bench

db=(--database "$out/herald.db")
wal="$out/herald.db-wal"
id=soak$(date +%s)
if [ -n "$pg" ]; then db=(--database "$pg" --database-schema "$id"); wal=""; fi
if [ -n "$redis" ]; then db+=(--redis "$redis" --redis-prefix "$id"); fi

node_pids=() bases=() bench_pid=""
cleanup() {
  [ -n "$bench_pid" ] && kill -TERM "$bench_pid" 2>/dev/null || true
  for p in "${node_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${node_pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

for i in $(seq "$nodes"); do
  port=$(free_port)
  HERALD_ENV=development "$out/herald" --addr "127.0.0.1:$port" --node-id "soak-node$i" "${db[@]}" \
    --jwt-secret "$secret" --api-keys "$key" --max-connections 25000 --log-level warn \
    >"$out/node$i.log" 2>&1 &
  node_pids+=($!)
  bases+=("http://127.0.0.1:$port")
done
for i in "${!bases[@]}"; do
  for _ in $(seq 100); do curl -sf "${bases[$i]}/readyz" >/dev/null && break; sleep 0.1; done
  curl -sf "${bases[$i]}/readyz" >/dev/null || { echo "soak: node $((i + 1)) not ready (see $out/node$((i + 1)).log)" >&2; exit 1; }
done
base=${bases[0]}
urls=$(IFS=,; echo "${bases[*]}")

# sample: one CSV line per node from its /metrics (and the WAL file).
metric() { awk -v m="$1" '$1 == m { printf "%.0f", $2; exit }' "$out/metrics.txt"; }
echo "t_s,node,rss_bytes,heap_bytes,goroutines,open_fds,wal_bytes" >"$out/samples.csv"
sample() {
  local i w
  for i in "${!bases[@]}"; do
    curl -sf -o "$out/metrics.txt" "${bases[$i]}/metrics" || continue
    w=0
    if [ -n "$wal" ] && [ -f "$wal" ]; then w=$(stat -c %s "$wal"); fi
    echo "$1,$((i + 1)),$(metric process_resident_memory_bytes),$(metric go_memstats_heap_alloc_bytes),$(metric go_goroutines),$(metric process_open_fds),$w" >>"$out/samples.csv"
  done
}

echo "soak: $duration of mixed load on $urls: $conns connections, $rate unicast/s, $bcast broadcast/s, $churn resumes/s; results in $out" >&2
"$out/herald-bench" --url "$urls" --jwt-secret "$secret" --api-key "$key" \
  --scenario mixed --conns "$conns" --rate "$rate" --broadcast-rate "$bcast" --churn-rate "$churn" \
  --duration "$duration" --server-pid "${node_pids[0]}" --metrics-url "$base/metrics" --quiet \
  --json >"$out/result.json" 2>"$out/bench.log" &
bench_pid=$!
# System-wide TCP counters (the box may be shared): listen-queue overflows
# and SYN retransmits would make some dials take 1, 3, 7 … s.
tcp_counters="TcpExtListenOverflows TcpExtListenDrops TcpExtTCPSynRetrans TcpExtTCPTimeWaitOverflow TcpExtTWRecycled"
nstat -az $tcp_counters >"$out/tcp_before.txt" 2>/dev/null || true
start=$(date +%s)
while kill -0 "$bench_pid" 2>/dev/null; do
  sample $(( $(date +%s) - start ))
  for _ in $(seq "$every"); do kill -0 "$bench_pid" 2>/dev/null || break; sleep 1; done
done
status=0
wait "$bench_pid" || status=$?
bench_pid=""
nstat -az $tcp_counters >"$out/tcp_after.txt" 2>/dev/null || true
awk 'NR == FNR { if ($1 ~ /^Tcp/) b[$1] = $2; next } $1 ~ /^Tcp/ { printf "%s %d\n", $1, $2 - b[$1] }' \
  "$out/tcp_before.txt" "$out/tcp_after.txt" | tee "$out/tcp_delta.txt" || true

python3 scripts/soak_plot.py "$out/samples.csv" "$out/samples.svg" | tee "$out/slopes.txt"
python3 - "$out/result.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
keys = ["expected", "delivered", "duplicates", "gaps", "misrouted", "reconnects", "reconnect_failures", "pass"]
print("soak result: " + ", ".join(f"{k} {d.get(k)}" for k in keys))
lat = d.get("latency", {})
print("live latency ms: p50 %s, p99 %s, p99.9 %s, max %s" % (lat.get("p50_ms"), lat.get("p99_ms"), lat.get("p999_ms"), lat.get("max_ms")))
rl = d.get("replay_latency", {})
print("replayed (published before the session was ready) %s, latency ms: p50 %s, p99 %s, max %s" % (d.get("replayed"), rl.get("p50_ms"), rl.get("p99_ms"), rl.get("max_ms")))
rd = d.get("resume_dial", {})
print("resume dial (connect to ready) ms: p50 %s, p99 %s, p99.9 %s, max %s" % (rd.get("p50_ms"), rd.get("p99_ms"), rd.get("p999_ms"), rd.get("max_ms")))
print("answered 201, never delivered: %s; delivered though refused: %s" % (d.get("acked_not_delivered"), d.get("delivered_not_acked")))
print("SYN retransmits on herald-bench's connects: %s" % d.get("syn_retrans"))
for name in ("latency_worst", "replay_worst"):
    print(name + ":")
    for s in d.get(name) or []:
        print("  %9.1f ms at %s seq %s user %s on %s pos %s %s first=%s resumed=%s attempts %s dial %.1f ms (connect %.1f ms, %s SYN retransmits), since dial %.1f ms, published %.1f ms before ready" % (
            s["latency_ms"], s["at"], s["seq"], s["user"], s["url"], s["position"], "broadcast" if s["broadcast"] else "unicast",
            s["first"], s["resumed"], s["dial_attempts"], s["dial_ms"], s.get("connect_ms", 0), s.get("syn_retrans", 0), s["since_dial_ms"], s["published_before_ready_ms"]))
print("slowest_publishes:")
for c in d.get("slowest_publishes") or []:
    print("  %9.1f ms at %s seq %s (%s items) %s on %s: %s, new connection %s" % (
        c["http_ms"], c["at"], c["seq"], c["items"], c["stream"], c["url"], c["status"], c["new_conn"]))
PY
echo "soak: samples.csv, samples.svg, result.json in $out" >&2
exit "$status"
}

main "$@"
