#!/usr/bin/env bash
# `make bench`: the standard herald-bench scenarios of docs/benchmarks.md, each
# against a fresh node (new database, spare loopback port), then one Markdown
# table. Environment:
#   BENCH_SCENARIOS  subset of: idle unicast-1k unicast-5k unicast-max broadcast
#   BENCH_SHORT=1    2,000 connections and 3 s per run: a quick check, not figures
#   BENCH_OUT        directory for each run's JSON and logs (default: a new temp dir)
#   HERALD_DATABASE_URL, HERALD_REDIS_URL  run the node on PostgreSQL / Redis
#                    (many-node mode), with a new schema and key prefix per run
#   GOGC             passed to the server only
#   BENCH_JSON       python3 or jq (default: python3 if present, else jq)
set -euo pipefail
cd "$(dirname "$0")/.."

all="idle unicast-1k unicast-5k unicast-max broadcast"
scenarios=${BENCH_SCENARIOS:-$all}
short=${BENCH_SHORT:-0}
gogc=${GOGC:-}
unset GOGC # the server's knob: the go tool and the generator keep their default
pg=${HERALD_DATABASE_URL:-}
redis=${HERALD_REDIS_URL:-}

# flags_for NAME: the herald-bench flags of a standard scenario.
flags_for() {
  local c=10000 d=10s
  if [ "$short" = 1 ]; then c=2000 d=3s; fi
  case $1 in
    idle) if [ "$short" = 1 ]; then echo "--scenario idle --conns 2000 --workers 2 --duration 3s"
          else echo "--scenario idle --conns 19000 --workers 2 --duration 10s"; fi ;;
    unicast-1k) echo "--scenario unicast --conns $c --rate 1000 --duration $d" ;;
    unicast-5k) echo "--scenario unicast --conns $c --rate 5000 --duration $d" ;;
    unicast-max) echo "--scenario unicast --conns $c --rate max --publishers 64 --duration $d" ;;
    broadcast) echo "--scenario broadcast --conns $c --rate 7 --duration $d --grace 30s" ;;
    *) return 1 ;;
  esac
}
for s in $scenarios; do
  flags_for "$s" >/dev/null || { echo "bench: unknown scenario '$s' (known: $all)" >&2; exit 2; }
done

json=${BENCH_JSON:-}
if [ -z "$json" ]; then
  if command -v python3 >/dev/null; then json=python3; elif command -v jq >/dev/null; then json=jq; fi
fi
case $json in python3|jq) command -v "$json" >/dev/null || json="" ;; *) json="" ;; esac
[ -n "$json" ] || { echo "bench: needs python3 or jq to read herald-bench's JSON" >&2; exit 2; }

tmp=$(mktemp -d -t herald-bench-build.XXXXXX)
out=${BENCH_OUT:-$(mktemp -d -t herald-bench-results.XXXXXX)}
mkdir -p "$out"
: >"$out/runs.tsv"
node_pid="" bench_pid=""

# stop_node: SIGTERM (the node drains), SIGKILL after 30 s.
stop_node() {
  [ -n "$node_pid" ] || return 0
  kill -TERM "$node_pid" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$node_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$node_pid" 2>/dev/null || true
  wait "$node_pid" 2>/dev/null || true
  node_pid=""
}
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  if [ -n "$bench_pid" ]; then
    kill -TERM "$bench_pid" 2>/dev/null || true
    wait "$bench_pid" 2>/dev/null || true
  fi
  stop_node
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(GIT_OPTIONAL_LOCKS=0 git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  rev="$rev + uncommitted changes"
fi
echo "bench: building herald and herald-bench ($rev) into $tmp" >&2
go build -o "$tmp/herald" ./cmd/herald
go build -o "$tmp/herald-bench" ./cmd/herald-bench

# spare_port: a random loopback port nobody listens on.
spare_port() {
  local p
  for _ in $(seq 1 50); do
    p=$(( 20000 + RANDOM % 12000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  echo "bench: no spare port found" >&2; return 1
}

secret="bench-secret-$(date +%s%N)-0123456789abcdef"
apikey="bench-api-key-$(date +%s%N)"
started=$(date -u '+%Y-%m-%d %H:%M')
leftovers=()

# run NAME: one scenario against a fresh node; appends a line to runs.tsv.
run() {
  local name=$1 flags port id status=0 load when
  flags=$(flags_for "$name")
  port=$(spare_port)
  id="bench_$(date +%s)_$$_${name//-/_}"
  local db=(--database "$tmp/$name.db")
  if [ -n "$pg" ]; then db=(--database "$pg" --database-schema "$id"); fi
  if [ -n "$redis" ]; then db+=(--redis "$redis" --redis-prefix "$id"); fi
  if [ -n "$pg$redis" ]; then leftovers+=("$id"); fi
  echo "bench: $name: herald on 127.0.0.1:$port; herald-bench $flags" >&2
  env HERALD_ENV=development ${gogc:+GOGC=$gogc} "$tmp/herald" --addr "127.0.0.1:$port" "${db[@]}" \
    --jwt-secret "$secret" --api-keys "$apikey" --max-connections 25000 --log-level warn \
    >"$out/$name.herald.log" 2>&1 &
  node_pid=$!
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    if ! kill -0 "$node_pid" 2>/dev/null; then
      echo "bench: herald exited:" >&2; tail -n 20 "$out/$name.herald.log" >&2; exit 2
    fi
    sleep 0.1
  done
  load=$(cut -d' ' -f1 /proc/loadavg)
  when=$(date -u +%H:%M:%S)
  # shellcheck disable=SC2086 # $flags is a list of words
  "$tmp/herald-bench" --url "http://127.0.0.1:$port" $flags --jwt-secret "$secret" --api-key "$apikey" \
    --server-pid "$node_pid" --metrics-url "http://127.0.0.1:$port/metrics" --quiet --json \
    >"$out/$name.json" 2>"$out/$name.stderr" &
  bench_pid=$!
  wait "$bench_pid" || status=$?
  bench_pid=""
  stop_node
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$flags" "$when" "$load" "$status" >>"$out/runs.tsv"
}

for s in $scenarios; do run "$s"; done

# row NAME FLAGS WHEN LOAD STATUS FILE: one Markdown table row.
# shellcheck disable=SC2016 # Python and jq programs, not shell
py_row='
import json, sys
name, flags, when, load, status, path = sys.argv[1:7]
head = "| %s | `%s` | %s UTC, load %s" % (name, flags, when, load)
try:
    r = json.loads(open(path).read().strip().splitlines()[-1])
except Exception:
    print(head + " | no result: herald-bench exit %s, see %s.stderr | – | ERROR |" % (status, name)); sys.exit()
lat, srv, u = r["latency"], r.get("server") or {}, r.get("unicast") or {}
cpu = "server CPU %.0f%%" % srv.get("cpu_pct", 0)
got = "%d/%d delivered" % (r["delivered"], r["expected"])
pcts = "p50/p99/p99.9 %.2f/%.2f/%.2f ms" % (lat["p50_ms"], lat["p99_ms"], lat["p999_ms"])
sat = " (saturated)" if u.get("saturated") else ""
if r["scenario"] == "idle":
    key = "%.2f KiB/conn, connect %.0f/s" % (srv.get("rss_per_conn_kib", 0), r["connect_rate"])
elif r["scenario"] == "broadcast":
    key = "%.0f deliveries/s, p50/p99 %.0f/%.0f ms, %s, %s" % (r["deliveries_per_s"], lat["p50_ms"], lat["p99_ms"], cpu, got)
elif name == "unicast-max":
    key = "**%.0f publishes/s**, %s, %s, %s" % (u.get("per_s", 0), pcts, cpu, got)
else:
    key = "%s, %s, %s, %.0f/s%s" % (pcts, cpu, got, u.get("per_s", 0), sat)
loss = max(0, r["expected"] - r["delivered"] - r["resync_skipped"])
bad = "/".join(str(x) for x in (loss, r["duplicates"], r["gaps"]))
bad += "".join(", %d %s" % (r[k], k) for k in ("misrouted", "malformed") if r[k])
ok = "PASS" if r["pass"] and status == "0" else "FAIL: " + "; ".join(r.get("failures") or ["exit " + status])
print("%s, idle %.0f%% | %s | %s | %s |" % (head, r["machine_idle_pct"], key, bad, ok))
'
# shellcheck disable=SC2016
jq_row='
def f(n): (. * pow(10; n) | round) / pow(10; n) | tostring;
(.latency) as $l | (.server // {}) as $s | (.unicast // {}) as $u
| ("server CPU " + ($s.cpu_pct // 0 | f(0)) + "%") as $cpu
| ((.delivered | tostring) + "/" + (.expected | tostring) + " delivered") as $got
| ("p50/p99/p99.9 " + ($l.p50_ms | f(2)) + "/" + ($l.p99_ms | f(2)) + "/" + ($l.p999_ms | f(2)) + " ms") as $pcts
| ([.expected - .delivered - .resync_skipped, 0] | max) as $loss
| "| \($name) | `\($flags)` | \($when) UTC, load \($load), idle \(.machine_idle_pct | f(0))% | "
  + (if .scenario == "idle" then ($s.rss_per_conn_kib // 0 | f(2)) + " KiB/conn, connect " + (.connect_rate | f(0)) + "/s"
     elif .scenario == "broadcast" then (.deliveries_per_s | f(0)) + " deliveries/s, p50/p99 " + ($l.p50_ms | f(0)) + "/" + ($l.p99_ms | f(0)) + " ms, " + $cpu + ", " + $got
     elif $name == "unicast-max" then "**" + ($u.per_s // 0 | f(0)) + " publishes/s**, " + $pcts + ", " + $cpu + ", " + $got
     else $pcts + ", " + $cpu + ", " + $got + ", " + ($u.per_s // 0 | f(0)) + "/s" + (if $u.saturated then " (saturated)" else "" end) end)
  + " | \($loss)/\(.duplicates)/\(.gaps)" + (if .misrouted > 0 then ", \(.misrouted) misrouted" else "" end)
  + (if .malformed > 0 then ", \(.malformed) malformed" else "" end)
  + " | " + (if .pass and $status == "0" then "PASS" else "FAIL: " + ((.failures // ["exit " + $status]) | join("; ")) end) + " |"
'
row() {
  if [ "$json" = python3 ]; then python3 -c "$py_row" "$@"; return; fi
  if ! tail -n 1 "$6" | jq -e . >/dev/null 2>&1; then
    echo "| $1 | \`$2\` | $3 UTC, load $4 | no result: herald-bench exit $5, see $1.stderr | – | ERROR |"; return
  fi
  tail -n 1 "$6" | jq -r --arg name "$1" --arg flags "$2" --arg when "$3" --arg load "$4" --arg status "$5" "$jq_row"
}

{
  backend="SQLite (a new file per run)"
  if [ -n "$pg" ]; then backend="PostgreSQL (a new schema per run)"; fi
  if [ -n "$redis" ]; then backend="$backend, Redis (a new key prefix per run)"; fi
  note=""; if [ "$short" = 1 ]; then note=", BENCH_SHORT=1 (a quick check: not comparable figures)"; fi
  echo "herald-bench standard scenarios: revision \`$rev\`, $started–$(date -u +%H:%M) UTC, $(nproc) CPUs," \
    "$backend, GOGC ${gogc:-default}${note}."
  echo
  echo "| scenario | herald-bench flags | start, 1-min load before, machine idle in the window | key figures | loss/dup/gap | pass |"
  echo "|---|---|---|---|---|---|"
  while IFS=$'\t' read -r name flags when load status; do
    row "$name" "$flags" "$when" "$load" "$status" "$out/$name.json"
  done <"$out/runs.tsv"
} | tee "$out/table.md"
failed=0
grep -q -e '| FAIL' -e '| ERROR |' "$out/table.md" && failed=1
if [ "${#leftovers[@]}" -gt 0 ]; then echo "PostgreSQL schemas / Redis key prefixes left in place: ${leftovers[*]}"; fi
echo
echo "Results (JSON per run, herald and herald-bench logs, table.md): $out"
exit "$failed"
