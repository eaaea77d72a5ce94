#!/usr/bin/env bash
# Fills dist/image/ for the Dockerfile's "prebuilt" target, which pulls no
# image: a static herald for linux/ARCH (default: this machine's), the CA
# bundle of this machine (or $CA_BUNDLE), and the /data and /tmp
# directories.
#
#   scripts/image-rootfs.sh [amd64|arm64]
#   docker build --target prebuilt -t herald .      # or podman build
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/version.sh
arch=${1:-$(go env GOARCH)}
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[ -s "$ca" ] || { echo "image-rootfs: no CA bundle at $ca (set CA_BUNDLE)" >&2; exit 1; }

# root/ is copied as root, data/ (the VOLUME) as the image's user.
out=dist/image
rm -rf "$out"
mkdir -p "$out/root/etc/ssl/certs" "$out/root/tmp" "$out/data"
CGO_ENABLED=0 GOOS=linux GOARCH="$arch" go build -trimpath -buildvcs=false -ldflags "$LDFLAGS" \
  -o "$out/root/herald" ./cmd/herald
cp "$ca" "$out/root/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$out/root/etc/ssl/certs/ca-certificates.crt"
chmod 1777 "$out/root/tmp"
chmod 0750 "$out/data"
echo "$out: herald $VERSION (linux/$arch), CA bundle from $ca"
