#!/usr/bin/env bash
# Fault runs (issue 18): each scenario runs Herald nodes on a private
# PostgreSQL and a private Redis (started here, on spare ports, so that the
# machine's shared servers are never touched), puts herald-bench's mixed
# load on them (unicast, broadcasts, a few resumes) plus a slow probe
# publisher that times every answer, injects one fault during the publish
# window, and prints one Markdown table row per scenario:
#
#   postgres  PostgreSQL down for FAULTS_PG_DOWN s (pg_ctl stop -m immediate,
#             then start): publishes must answer 503, never a false 201
#   redis     Redis SIGKILLed, restarted after FAULTS_REDIS_DOWN s
#   node      one of two nodes SIGKILLed; its clients resume on the other
#   rolling   three nodes drained (SIGTERM) and restarted one after another
#
#   scripts/faults.sh                      # all four
#   FAULTS="postgres node" scripts/faults.sh
#
# Each row's checks: herald-bench's (every delivery in order, no duplicate,
# no gap; every item answered 201 delivered, by sequence number), and the
# probe's (every id answered 201 is listed by GET /v1/me/notifications).
# Environment (defaults): FAULTS (all four), FAULTS_CONNS (1000),
# FAULTS_RATE unicast/s (200), FAULTS_PG_DOWN (30), FAULTS_REDIS_DOWN (20),
# FAULTS_OUT directory (a new temp dir). Needs initdb/pg_ctl (found under
# /usr/lib/postgresql/*/bin when not on PATH; run as the postgres user when
# this script runs as root) and redis-server.
#
# Everything runs inside main, which bash reads whole before it starts.
set -euo pipefail

main() {
  cd "$(dirname "$0")/.."
  scenarios=${FAULTS:-postgres redis node rolling}
  conns=${FAULTS_CONNS:-1000}
  rate=${FAULTS_RATE:-200}
  pg_down=${FAULTS_PG_DOWN:-30}
  redis_down=${FAULTS_REDIS_DOWN:-20}
  out=${FAULTS_OUT:-$(mktemp -d -t herald-faults.XXXXXX)}
  mkdir -p "$out"
  secret=faults-secret-faults-secret-faults-0123456
  key=faults-api-key-0123456789
  tenant=bench

  echo "faults: building into $out" >&2
  go build -o "$out/herald" ./cmd/herald
  go build -o "$out/herald-bench" ./cmd/herald-bench
  trap cleanup EXIT
  start_postgres
  redis_port=$(free_port)
  start_redis

  rows=()
  for s in $scenarios; do
    echo "faults: scenario $s" >&2
    "scenario_$s"
  done
  printf '\n| fault | load | publishes (bench + probe) | 201 never delivered / listed | loss, dup, gap | recovery | clients | pass |\n'
  printf '|---|---|---|---|---|---|---|---|\n'
  printf '%s\n' "${rows[@]}"
  echo "faults: logs and results in $out" >&2
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# as_pg runs a PostgreSQL tool, as the postgres user when we are root
# (initdb refuses to run as root).
as_pg() {
  local bin
  bin=$(command -v "$1" || ls /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | tail -1)
  [ -n "$bin" ] || { echo "faults: $1 not found" >&2; exit 2; }
  shift
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$bin" "$@"; else "$bin" "$@"; fi
}

start_postgres() {
  pg_dir=$(mktemp -d -t herald-faults-pg.XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
  pg_port=$(free_port)
  as_pg initdb -D "$pg_dir/data" -A trust -U postgres >"$out/initdb.log" 2>&1
  pg_ctl_start
  pg_url="postgres://postgres@127.0.0.1:$pg_port/postgres?sslmode=disable"
}

pg_ctl_start() {
  as_pg pg_ctl -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
    -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
}

pg_ctl_stop() { as_pg pg_ctl -D "$pg_dir/data" -m immediate -w stop >/dev/null; }

start_redis() {
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning \
    >>"$out/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "faults: redis-server did not start" >&2
  exit 1
}

node_pids=() node_ports=() bench_pid="" probe_pid=""
cleanup() {
  [ -n "$probe_pid" ] && kill -TERM "$probe_pid" 2>/dev/null || true
  [ -n "$bench_pid" ] && kill -TERM "$bench_pid" 2>/dev/null || true
  stop_nodes
  [ -n "${redis_pid:-}" ] && kill -KILL "$redis_pid" 2>/dev/null || true
  if [ -n "${pg_dir:-}" ]; then
    pg_ctl_stop 2>/dev/null || true
    rm -rf "$pg_dir"
  fi
}

# start_node I: node I (1-based) of the current scenario, on its port.
start_node() {
  local i=$1
  HERALD_ENV=development "$out/herald" --addr "127.0.0.1:${node_ports[$((i - 1))]}" --node-id "$id-node$i" \
    --database "$pg_url" --database-schema "$id" --redis "redis://127.0.0.1:$redis_port/0" --redis-prefix "$id" \
    --jwt-secret "$secret" --api-keys "$key" --log-level warn >>"$dir/node$i.log" 2>&1 &
  node_pids[$((i - 1))]=$!
}

wait_ready() {
  local port=$1
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return; sleep 0.1; done
  echo "faults: node on $port not ready (see $dir)" >&2
  exit 1
}

stop_nodes() {
  local p
  for p in "${node_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${node_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  node_pids=()
}

# begin NAME NODES DURATION: start the nodes, the load and the probe, and
# wait until the publish window has run for a few seconds.
begin() {
  local n=$2 i
  id=faults_$1_$(date +%s)
  dir=$out/$1
  mkdir -p "$dir"
  node_ports=()
  for i in $(seq "$n"); do node_ports+=("$(free_port)"); done
  for i in $(seq "$n"); do start_node "$i"; done
  for i in $(seq "$n"); do wait_ready "${node_ports[$((i - 1))]}"; done
  urls=$(for p in "${node_ports[@]}"; do printf 'http://127.0.0.1:%s,' "$p"; done)
  urls=${urls%,}
  echo "$urls" >"$dir/urls.txt"
  load="$conns conns on $n nodes, $rate unicast/s + 1 broadcast/s + 5 resumes/s"
  "$out/herald-bench" --url "$urls" --jwt-secret "$secret" --api-key "$key" --tenant "$tenant" \
    --scenario mixed --conns "$conns" --rate "$rate" --broadcast-rate 1 --churn-rate 5 \
    --duration "$3" --grace 30s --json \
    >"$dir/result.json" 2> >(while IFS= read -r l; do echo "$EPOCHREALTIME $l"; done >"$dir/bench.log") &
  bench_pid=$!
  python3 scripts/fault_probe.py run "$urls" "$key" "$tenant" "probe-$id" "$dir/probe.log" &
  probe_pid=$!
  for _ in $(seq 600); do grep -q 'herald-bench: publish' "$dir/bench.log" 2>/dev/null && break; sleep 0.1; done
  sleep 5
}

# finish NAME FAULT FROM TO: wait for the load, check, and add the row.
finish() {
  local status=0
  wait "$bench_pid" || status=$?
  bench_pid=""
  kill -TERM "$probe_pid" 2>/dev/null || true
  wait "$probe_pid" 2>/dev/null || true
  probe_pid=""
  sleep 1
  python3 scripts/fault_probe.py check "$urls" "$secret" "$tenant" "probe-$id" "$dir/probe.log" >"$dir/check.json"
  python3 scripts/fault_probe.py window "$dir/probe.log" "$3" "$4" >"$dir/window.json"
  stop_nodes
  rows+=("$(python3 scripts/fault_probe.py row "$2" "$load" "$dir" "$3" "$4" "$status")")
  echo "faults: ${rows[-1]}" >&2
}

scenario_postgres() {
  begin postgres 2 75s
  local a b
  a=$EPOCHREALTIME
  pg_ctl_stop
  sleep "$pg_down"
  pg_ctl_start
  b=$EPOCHREALTIME
  finish postgres "PostgreSQL down ${pg_down} s (stop -m immediate, start)" "$a" "$b"
}

scenario_redis() {
  begin redis 2 60s
  local a b
  a=$EPOCHREALTIME
  kill -KILL "$redis_pid"
  wait "$redis_pid" 2>/dev/null || true
  sleep "$redis_down"
  start_redis
  b=$EPOCHREALTIME
  finish redis "Redis SIGKILLed, restarted after ${redis_down} s" "$a" "$b"
}

scenario_node() {
  begin node 2 45s
  local a
  a=$EPOCHREALTIME
  kill -KILL "${node_pids[1]}"
  wait "${node_pids[1]}" 2>/dev/null || true
  unset 'node_pids[1]'
  finish node "node 2 of 2 SIGKILLed (not restarted)" "$a" "$a"
}

scenario_rolling() {
  begin rolling 3 80s
  local a i t0
  a=$EPOCHREALTIME
  : >"$dir/rolling.txt"
  for i in 1 2 3; do
    t0=$EPOCHREALTIME
    kill -TERM "${node_pids[$((i - 1))]}"
    wait "${node_pids[$((i - 1))]}" 2>/dev/null || true
    echo "node$i drained in $(python3 -c "print(round($EPOCHREALTIME - $t0, 1))") s" >>"$dir/rolling.txt"
    t0=$EPOCHREALTIME
    start_node "$i"
    wait_ready "${node_ports[$((i - 1))]}"
    echo "node$i ready again in $(python3 -c "print(round($EPOCHREALTIME - $t0, 1))") s" >>"$dir/rolling.txt"
    sleep 10
  done
  finish rolling "rolling restart of 3 nodes (SIGTERM, drain, restart, 10 s, next)" "$a" "$EPOCHREALTIME"
}

main "$@"
