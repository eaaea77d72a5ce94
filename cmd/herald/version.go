package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by release builds (scripts/release.sh, the Dockerfile):
//
//	-ldflags "-X main.version=v1.2.3 -X main.commit=<sha> -X main.date=<RFC 3339>"
//
// A plain go build or go install leaves them empty, and buildVersion falls
// back to what the Go toolchain stamped into the binary.
var (
	version string
	commit  string
	date    string
)

// buildVersion describes this binary: version, commit, build date.
type buildVersion struct {
	Version, Commit, Date string
	Modified              bool // built from a work tree with uncommitted changes
}

// currentVersion is the ldflags values, each one that is unset read from
// the build info the toolchain embeds: the module version (a tag with go
// install …@v1.2.3, "(devel)" in a work tree) and the VCS revision and
// commit time (go build in a git checkout).
func currentVersion() buildVersion {
	bi, _ := debug.ReadBuildInfo()
	return resolveVersion(version, commit, date, bi)
}

func resolveVersion(version, commit, date string, bi *debug.BuildInfo) buildVersion {
	v := buildVersion{Version: version, Commit: commit, Date: date}
	if bi != nil {
		if v.Version == "" && bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if v.Commit == "" {
					v.Commit = s.Value
				}
			case "vcs.time":
				if v.Date == "" {
					v.Date = s.Value
				}
			case "vcs.modified":
				v.Modified = s.Value == "true" && commit == ""
			}
		}
	}
	for _, f := range []*string{&v.Version, &v.Commit, &v.Date} {
		if *f == "" {
			*f = "unknown"
		}
	}
	return v
}

func (v buildVersion) String() string {
	c := v.Commit
	if v.Modified {
		c += "-dirty"
	}
	return fmt.Sprintf("herald %s\ncommit %s\nbuilt %s\n%s %s/%s\n", v.Version, c, v.Date,
		runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
