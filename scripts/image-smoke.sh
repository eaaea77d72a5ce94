#!/usr/bin/env bash
# Proves the container image without running a container (podman builds
# images on the CI machine, but running one fails there: crun cannot
# setrlimit). It
#   1. builds the Dockerfile's "prebuilt" target (scripts/image-rootfs.sh: no
#      image is pulled, the base is scratch),
#   2. checks the image's config: non-root USER, port 8080, VOLUME /data,
#      ENTRYPOINT /herald,
#   3. exports the image's filesystem (podman create + podman export) and
#      checks it: a static binary and the CA bundle owned by root, /data
#      owned by the image's user,
#   4. runs /herald from that filesystem (chroot, as the image's user, with
#      the image's environment only, so on its default :8080) in a network
#      namespace of its own, and checks that /readyz answers, that a publish
#      is accepted and that WebSocket clients receive it (herald-bench, a
#      short unicast run that fails on any loss, duplicate or gap), and that
#      the SQLite database was written under /data.
# Needs root (chroot, unshare) and podman; CI calls it. About 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --in-netns ]; then
  # Step 4, inside a fresh network namespace: only this herald is on :8080.
  tmp=$2
  ip link set lo up
  secret="image-smoke-$(date +%s%N)-0123456789abcdef0123"
  apikey="image-smoke-key-$(date +%s%N)"
  env_args=()
  while IFS= read -r kv; do env_args+=("$kv"); done <"$tmp/env"
  env -i "${env_args[@]}" HERALD_JWT_SECRET="$secret" HERALD_API_KEYS="$apikey" HERALD_LOG_LEVEL=warn \
    chroot --userspec=65532:65532 "$tmp/rootfs" /herald >"$tmp/herald.out" 2>"$tmp/herald.err" &
  pid=$!
  trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
  ready=""
  for _ in $(seq 1 100); do
    if curl -fsS -o "$tmp/readyz" http://127.0.0.1:8080/readyz 2>/dev/null; then ready=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$ready" ]; then
    echo "image-smoke: /readyz never answered 200; herald's log:" >&2; cat "$tmp/herald.err" >&2; exit 1
  fi
  echo "image-smoke: /readyz: $(cat "$tmp/readyz")"
  status=0
  "$tmp/herald-bench" --url http://127.0.0.1:8080 --scenario unicast --conns 50 --rate 100 --duration 2s \
    --jwt-secret "$secret" --api-key "$apikey" --server-pid "$pid" --quiet --markdown || status=$?
  if [ "$status" -ne 0 ]; then
    echo "image-smoke: herald-bench exited with $status; herald's log:" >&2; tail -n 50 "$tmp/herald.err" >&2; exit 1
  fi
  kill -TERM "$pid"; wait "$pid" || { echo "image-smoke: herald did not exit 0 on SIGTERM" >&2; exit 1; }
  trap - EXIT
  exit 0
fi

command -v podman >/dev/null || { echo "image-smoke: podman is not installed" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "image-smoke: needs root (chroot, unshare)" >&2; exit 1; }

tmp=$(mktemp -d)
tag="localhost/herald:smoke-$$"
ctr=""
cleanup() {
  [ -z "$ctr" ] || podman rm -f "$ctr" >/dev/null 2>&1 || true
  podman rmi -f "$tag" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "image-smoke: $*" >&2; exit 1; }

# 1. Build.
scripts/image-rootfs.sh
go build -o "$tmp/herald-bench" ./cmd/herald-bench
podman build --quiet --target prebuilt -t "$tag" . >/dev/null

# 2. Config.
podman image inspect "$tag" --format '{{json .Config}}' >"$tmp/config.json"
python3 - "$tmp/config.json" "$tmp/env" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
checks = {
    "User is 65532:65532": c.get("User") == "65532:65532",
    "ENTRYPOINT is /herald": c.get("Entrypoint") == ["/herald"],
    "EXPOSE 8080/tcp": "8080/tcp" in (c.get("ExposedPorts") or {}),
    "VOLUME /data": "/data" in (c.get("Volumes") or {}),
    "HERALD_ADDR=:8080": "HERALD_ADDR=:8080" in c.get("Env", []),
    "HERALD_DATABASE under /data": any(e.startswith("HERALD_DATABASE=/data/") for e in c.get("Env", [])),
}
bad = [k for k, ok in checks.items() if not ok]
if bad:
    sys.exit("image-smoke: image config: " + ", ".join(bad) + "\n" + json.dumps(c, indent=1))
open(sys.argv[2], "w").write("\n".join(c["Env"]) + "\n")
PY
size=$(podman image inspect "$tag" --format '{{.Size}}')

# 3. Filesystem.
ctr=$(podman create "$tag")
mkdir "$tmp/rootfs"
podman export "$ctr" | tar -x -C "$tmp/rootfs" --same-owner --same-permissions
root="$tmp/rootfs"
[ "$(stat -c %u:%g "$root/data")" = 65532:65532 ] || fail "/data is owned by $(stat -c %u:%g "$root/data"), want 65532:65532"
[ "$(stat -c %u "$root/herald")" = 0 ] || fail "/herald is not owned by root"
[ -s "$root/etc/ssl/certs/ca-certificates.crt" ] || fail "no CA bundle"
file -b "$root/herald" | grep -q 'statically linked' || fail "/herald is not static: $(file -b "$root/herald")"
go version -m "$root/herald" | grep -q 'CGO_ENABLED=0' || fail "/herald was not built with CGO_ENABLED=0"
files=$(cd "$root" && find . -mindepth 1 -not -type d | sort | tr '\n' ' ')
echo "image-smoke: image $tag: $(( size / 1024 / 1024 )) MiB ($size bytes); files: $files"
chroot --userspec=65532:65532 "$root" /herald --version | sed 's/^/image-smoke: /'

# 4. Run it.
unshare -n "$0" --in-netns "$tmp"
ls "$root/data/herald.db" >/dev/null 2>&1 || fail "no SQLite database under /data after the run"
[ "$(stat -c %u "$root/data/herald.db")" = 65532 ] || fail "/data/herald.db not written by the image's user"
echo "image-smoke: passed"
