package main

import (
	"bytes"
	"context"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolveVersion(t *testing.T) {
	stamped := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	for _, tc := range []struct {
		name                  string
		version, commit, date string
		bi                    *debug.BuildInfo
		want                  buildVersion
	}{
		{"ldflags win", "v1.2.3", "def456", "2026-12-06T07:00:00Z", stamped,
			buildVersion{"v1.2.3", "def456", "2026-12-06T07:00:00Z", false}},
		{"build info fallback", "", "", "", stamped,
			buildVersion{"(devel)", "abc123", "2026-12-01T10:00:00Z", true}},
		{"go install of a tag", "", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}},
			buildVersion{"v0.9.0", "unknown", "unknown", false}},
		{"nothing known", "", "", "", nil, buildVersion{"unknown", "unknown", "unknown", false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := resolveVersion(tc.version, tc.commit, tc.date, tc.bi); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestRunVersion: --version prints the build and exits without starting a
// node (no configuration is needed).
func TestRunVersion(t *testing.T) {
	version, commit, date = "v9.9.9", "0123abcd", "2026-12-06T00:00:00Z"
	t.Cleanup(func() { version, commit, date = "", "", "" })
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"herald v9.9.9\n", "commit 0123abcd\n", "built 2026-12-06T00:00:00Z\n", "go1."} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--version output lacks %q:\n%s", want, out.String())
		}
	}
}
