# Sourced by the build scripts: the version, commit and date stamped into
# herald (--version), from git unless already set in the environment.
# VERSION: the nearest tag (v1.2.3, or v1.2.3-4-gabcdef1[-dirty] after it),
# the short commit without tags. DATE: the commit's time, so that two builds
# of one commit are identical.
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
COMMIT=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
DATE=${DATE:-$(TZ=UTC git log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)}
LDFLAGS="-s -w -X main.version=$VERSION -X main.commit=$COMMIT -X main.date=$DATE"
export VERSION COMMIT DATE LDFLAGS
