package testkit

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// WebhookReceiver is a real HTTP receiver of Herald's webhooks on a
// loopback port. It verifies every request with the Standard Webhooks
// library (not with Herald's own signer), answers 204, or 503 while Fail
// is set, and records what it got.
type WebhookReceiver struct {
	URL  string
	Fail atomic.Bool // answer 503

	t    testing.TB
	wh   *standardwebhooks.Webhook
	hold atomic.Pointer[chan struct{}]

	inside, peak atomic.Int32

	mu    sync.Mutex
	got   []WebhookDelivery // verified deliveries answered 2xx; guarded by mu
	tries map[string]int    // requests per webhook-id; guarded by mu
	bad   []string          // refused requests; guarded by mu
}

// WebhookDelivery is one verified delivery.
type WebhookDelivery struct {
	ID     string
	Header http.Header
	Body   json.RawMessage
}

// Decode unmarshals the body into v, failing t.
func (d WebhookDelivery) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(d.Body, v); err != nil {
		t.Fatalf("webhook body %s: %v", d.Body, err)
	}
}

// NewWebhookReceiver starts a receiver for secret (whsec_...), stopped
// when the test ends.
func NewWebhookReceiver(t testing.TB, secret string) *WebhookReceiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &WebhookReceiver{t: t, wh: wh, tries: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// Hold makes requests wait until ch is closed.
func (r *WebhookReceiver) Hold(ch chan struct{}) { r.hold.Store(&ch) }

func (r *WebhookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	n := r.inside.Add(1)
	defer r.inside.Add(-1)
	for p := r.peak.Load(); n > p && !r.peak.CompareAndSwap(p, n); p = r.peak.Load() {
	}
	if h := r.hold.Load(); h != nil {
		<-*h
	}
	body, _ := io.ReadAll(req.Body)
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tries[id]++
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.bad = append(r.bad, id+": "+err.Error())
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if req.Header.Get("Content-Type") != "application/json" {
		r.bad = append(r.bad, id+": content type "+req.Header.Get("Content-Type"))
	}
	var top struct{ ID string }
	if err := json.Unmarshal(body, &top); err != nil || top.ID != id {
		r.bad = append(r.bad, id+": body id differs from webhook-id: "+string(body))
	}
	if r.Fail.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	r.got = append(r.got, WebhookDelivery{ID: id, Header: req.Header.Clone(), Body: body})
	w.WriteHeader(http.StatusNoContent)
}

// Delivered is every verified delivery answered 2xx, in order. A request
// that failed verification fails the test.
func (r *WebhookReceiver) Delivered() []WebhookDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		r.t.Errorf("webhook receiver refused: %v", r.bad)
	}
	return slices.Clone(r.got)
}

// Attempts is the number of requests that carried webhook-id id.
func (r *WebhookReceiver) Attempts(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tries[id]
}

// Tries is the number of requests per webhook-id.
func (r *WebhookReceiver) Tries() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.tries))
	for k, v := range r.tries {
		out[k] = v
	}
	return out
}

// TotalAttempts is the number of requests received.
func (r *WebhookReceiver) TotalAttempts() int {
	n := 0
	for _, c := range r.Tries() {
		n += c
	}
	return n
}

// InFlight and Peak are the requests being answered now and at most.
func (r *WebhookReceiver) InFlight() int32 { return r.inside.Load() }

// Peak is the most requests answered at once.
func (r *WebhookReceiver) Peak() int32 { return r.peak.Load() }
