package client_test

// Conditions a real Herald node does not produce (it always sends
// "Retry-After: 1" and JSON error bodies), on a test server that speaks
// Herald's error shape: Retry-After as an HTTP date, over the client's
// limit, absent; a foreign body from a proxy; a 500.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/client"
)

// fakeHerald answers each request with the next of answers (the last one
// repeats), and counts requests.
func fakeHerald(t *testing.T, answers ...func(w http.ResponseWriter)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		answers[min(i, len(answers)-1)](w)
	}))
	t.Cleanup(s.Close)
	return s, &n
}

func heraldError(status int, code, retryAfter string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(`{"error":{"code":"` + code + `","message":"m","correlation_id":"0123456789abcdef"}}`))
	}
}

func created(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(201)
	w.Write([]byte(`{"id":"01M8D5450Z57W4W86TP58X3ZWB"}`))
}

var anyNotification = client.Notification{Tenant: "acme", To: client.ToTenant(), Type: "t", Title: "x"}

func TestRetryAfterAsHTTPDate(t *testing.T) {
	// Two seconds ahead (HTTP dates have second precision): the retry
	// waits more than one second.
	s, n := fakeHerald(t, func(w http.ResponseWriter) {
		heraldError(503, "unavailable", time.Now().Add(2*time.Second).UTC().Format(http.TimeFormat))(w)
	}, created)
	start := time.Now()
	id, err := newClient(t, s.URL, "k").Publish(context.Background(), anyNotification)
	if err != nil || id == "" || n.Load() != 2 {
		t.Fatalf("id %q, err %v, %d requests", id, err, n.Load())
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("retried after %v", d)
	}
}

func TestRetryAfterOverTheLimitIsNotWaitedFor(t *testing.T) {
	s, n := fakeHerald(t, heraldError(429, "rate_limited", "3600"), created)
	start := time.Now()
	_, err := newClient(t, s.URL, "k").Publish(context.Background(), anyNotification)
	var herr *client.Error
	if !errors.As(err, &herr) || herr.Status != 429 || herr.RetryAfter != time.Hour || n.Load() != 1 || time.Since(start) > time.Second {
		t.Fatalf("err %v, %d requests after %v", err, n.Load(), time.Since(start))
	}
}

func TestBackoffWithoutRetryAfterAndGivingUp(t *testing.T) {
	s, n := fakeHerald(t, heraldError(503, "unavailable", ""))
	c := newClient(t, s.URL, "k", client.WithRetry(client.RetryPolicy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond}))
	_, err := c.Publish(context.Background(), anyNotification)
	var herr *client.Error
	if !errors.As(err, &herr) || herr.Status != 503 || herr.Code != client.CodeUnavailable || n.Load() != 3 {
		t.Fatalf("err %v after %d requests, want the last 503 after 3", err, n.Load())
	}
}

func TestOtherStatusesAreNotRetried(t *testing.T) {
	for _, status := range []int{400, 404, 409, 500, 502, 504} {
		s, n := fakeHerald(t, heraldError(status, "x", "1"), created)
		_, err := newClient(t, s.URL, "k").Publish(context.Background(), anyNotification)
		var herr *client.Error
		if !errors.As(err, &herr) || herr.Status != status || n.Load() != 1 {
			t.Fatalf("%d: err %v after %d requests", status, err, n.Load())
		}
	}
}

func TestForeignErrorBody(t *testing.T) {
	s, _ := fakeHerald(t, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(502)
		w.Write([]byte("<html>Bad Gateway</html>\n"))
	})
	_, err := newClient(t, s.URL, "k").Publish(context.Background(), anyNotification)
	var herr *client.Error
	if !errors.As(err, &herr) || herr.Status != 502 || herr.Code != "" || herr.Message != "<html>Bad Gateway</html>" || herr.CorrelationID != "" {
		t.Fatalf("err %#v", err)
	}
}

func TestCancelledContextStopsTheWait(t *testing.T) {
	s, n := fakeHerald(t, heraldError(503, "unavailable", "5"))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := newClient(t, s.URL, "k").Publish(ctx, anyNotification)
	var herr *client.Error
	if !errors.As(err, &herr) || herr.Status != 503 || n.Load() != 1 || time.Since(start) > 2*time.Second {
		t.Fatalf("err %v after %d requests and %v", err, n.Load(), time.Since(start))
	}
}
