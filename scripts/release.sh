#!/usr/bin/env bash
# make release: static herald binaries (CGO_ENABLED=0, -trimpath) for the
# release platforms, each in an archive with LICENSE, README.md and
# CHANGELOG.md, a CycloneDX SBOM per binary (cyclonedx-gomod, from the
# binary's embedded module list) and SHA256SUMS over everything, in
# dist/release/.
#
#   make release                          # version from git describe
#   VERSION=v1.2.3 make release           # a tagged release
#   RELEASE_PLATFORMS="linux/amd64" make release
#
# A build stamps the version, commit and commit date (herald --version) and
# is reproducible: two builds of one commit give the same checksums.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/version.sh
. scripts/go-tool.sh
CYCLONEDX_VERSION=v1.10.0
go_tool cyclonedx-gomod github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod "$CYCLONEDX_VERSION"

platforms=${RELEASE_PLATFORMS:-linux/amd64 linux/arm64 darwin/arm64 windows/amd64}
out=dist/release
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$out"
mkdir -p "$out"
abs_out=$(cd "$out" && pwd)

for p in $platforms; do
  os=${p%/*} arch=${p#*/}
  name="herald_${VERSION#v}_${os}_${arch}"
  exe=herald
  [ "$os" = windows ] && exe=herald.exe
  mkdir -p "$tmp/$name"
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -buildvcs=false -ldflags "$LDFLAGS" \
    -o "$tmp/$name/$exe" ./cmd/herald
  cp LICENSE README.md CHANGELOG.md "$tmp/$name/"
  # The SBOM: every module linked in, and the standard library; its time is
  # the commit's, so that it is reproducible too.
  cyclonedx-gomod bin -json -std -noserial -version "$VERSION" -output "$tmp/$name.cdx.json" "$tmp/$name/$exe" 2>/dev/null
  python3 - "$tmp/$name.cdx.json" "$out/$name.cdx.json" "$DATE" <<'PY'
import json, sys
bom = json.load(open(sys.argv[1]))
bom["metadata"]["timestamp"] = sys.argv[3]
json.dump(bom, open(sys.argv[2], "w"), indent=2, sort_keys=True)
PY
  # Archives without local owners or times, so that they are reproducible.
  touch -d "$DATE" "$tmp/$name" "$tmp/$name"/*
  if [ "$os" = windows ]; then
    (cd "$tmp" && TZ=UTC zip -qX -r "$abs_out/$name.zip" "$name")
  else
    tar -C "$tmp" --sort=name --owner=0 --group=0 --numeric-owner --mtime="$DATE" -cf - "$name" |
      gzip -n >"$out/$name.tar.gz"
  fi
done
(cd "$out" && sha256sum -- *.tar.gz *.zip *.cdx.json 2>/dev/null >SHA256SUMS)

# The binary for this machine reports what was stamped.
host="herald_${VERSION#v}_$(go env GOOS)_$(go env GOARCH)"
if [ -x "$tmp/$host/herald" ]; then
  "$tmp/$host/herald" --version | grep -qx "herald $VERSION" ||
    { echo "release: --version does not say $VERSION" >&2; exit 1; }
fi
(cd "$out" && sha256sum -c --quiet SHA256SUMS)
echo "release $VERSION ($COMMIT, $DATE) in $out:"
(cd "$out" && ls -l | tail -n +2 | awk '{printf "  %-50s %8d KiB\n", $9, $5/1024}')
