package audit

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

type counts map[string]int

func (c counts) Count(ev Event, reason, transport string) {
	c[string(ev)+"|"+reason+"|"+transport]++
}

func TestRecordCountsAndLogs(t *testing.T) {
	var buf bytes.Buffer
	c := counts{}
	r := New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError})), c)
	r.Warn(TokenInvalid, "token rejected", "reason", "expired", "transport", "ws")
	r.Error(OriginRejected, "origin rejected", "transport", "sse", "origin", "https://evil.example")
	if c["token_invalid|expired|ws"] != 1 {
		t.Fatalf("token_invalid not counted below the log level: %v", c)
	}
	if c["origin_rejected||sse"] != 1 {
		t.Fatalf("origin_rejected not counted: %v", c)
	}
	out := buf.String()
	if strings.Contains(out, "token rejected") {
		t.Fatalf("a warning was logged under an error-level logger: %q", out)
	}
	if !strings.Contains(out, "event=origin_rejected") || !strings.Contains(out, "origin=https://evil.example") {
		t.Fatalf("log line lacks the event or its attributes: %q", out)
	}
}

func TestNilRecorder(t *testing.T) {
	var r *Recorder
	r.Warn(RateLimited, "ignored") // must not panic
	if r.Logger() == nil {
		t.Fatal("nil recorder has no logger")
	}
	New(nil, nil).Info(Connect, "no logger, no counter")
}

type namedReason string

func TestRecordNamedStringAttr(t *testing.T) {
	c := counts{}
	New(nil, c).Warn(TokenInvalid, "token rejected", "reason", namedReason("signature"), "transport", "rest")
	if c["token_invalid|signature|rest"] != 1 {
		t.Fatalf("named string reason not counted: %v", c)
	}
}
