package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// DefaultTimeout bounds one attempt of a call (its retries each get their
// own) when the client uses its own *http.Client.
const DefaultTimeout = 15 * time.Second

// maxResponseBytes bounds what is read of an answer (a batch of 1000 ids
// is about 30 KB).
const maxResponseBytes = 1 << 20

// Client calls one Herald deployment with one API key. It is immutable
// after New and safe for concurrent use.
type Client struct {
	base   string       // static after New: the URL without a trailing slash
	key    string       // static after New
	http   *http.Client // static after New
	retry  RetryPolicy  // static after New, defaults filled in
	agent  string       // static after New
	newKey func() string
	now    func() time.Time
}

// Option configures a Client in New.
type Option func(*Client)

// WithHTTPClient sends requests with hc instead of a client of the
// package's own (whose attempts time out after DefaultTimeout).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithRetry sets the retry policy (zero fields mean the defaults;
// MaxAttempts 1 disables retries).
func WithRetry(p RetryPolicy) Option { return func(c *Client) { c.retry = p } }

// WithUserAgent sets the User-Agent header (default "herald-go").
func WithUserAgent(ua string) Option { return func(c *Client) { c.agent = ua } }

// New returns a client of the Herald at baseURL (e.g.
// "https://herald.example.com") that authenticates with apiKey: a publish
// key, or an admin key for the revocation calls. It does no I/O; a bad URL
// or key shows in the first call's error.
func New(baseURL, apiKey string, opts ...Option) *Client {
	c := &Client{
		base:   strings.TrimRight(baseURL, "/"),
		key:    apiKey,
		agent:  "herald-go",
		newKey: rand.Text,
		now:    time.Now,
	}
	for _, o := range opts {
		o(c)
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: DefaultTimeout, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	c.retry.setDefaults()
	return c
}

// CloseIdleConnections closes the idle keep-alive connections of the
// client's HTTP client.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// CallOption tunes one call.
type CallOption func(*call)

// IdempotencyKey sets the Idempotency-Key of a publish (1–255 printable
// ASCII characters, no spaces), e.g. derived from the event that causes
// the notification ("order-1234-paid"), so that a publish repeated by your
// own code, a process restart included, stores nothing twice. Without it,
// each call gets a random key, which protects the retries of that call.
func IdempotencyKey(key string) CallOption { return func(c *call) { c.idemKey = key } }

// call is one API call: the same method, path, headers and body on every attempt.
type call struct {
	op      string // for error messages: "publish"
	method  string
	path    string
	body    []byte // nil: none
	idemKey string
}

// response is a 2xx answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do runs cl with retries (see RetryPolicy) and returns the first 2xx
// answer. Every call of this package is idempotent (publishes carry an
// Idempotency-Key), so network failures are retried too.
func (c *Client) do(ctx context.Context, cl *call) (*response, error) {
	var last error
	for attempt := 0; ; attempt++ {
		resp, err := c.attempt(ctx, cl)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("herald: %s: %w", cl.op, ctx.Err())
		}
		last = err
		var wait time.Duration
		var herr *Error
		switch {
		case errors.As(err, &herr) && !herr.Temporary():
			return nil, err
		case herr != nil && herr.RetryAfter > 0:
			if herr.RetryAfter > c.retry.MaxRetryAfter {
				return nil, err
			}
			wait = honour(herr.RetryAfter)
		default:
			wait = c.retry.backoff(attempt)
		}
		if attempt+1 >= c.retry.MaxAttempts {
			return nil, last
		}
		if dl, ok := ctx.Deadline(); ok && c.now().Add(wait).After(dl) {
			return nil, last // the wait would outlive the call
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, last
		case <-t.C:
		}
	}
}

// attempt sends cl once. A non-2xx answer is an *Error.
func (c *Client) attempt(ctx context.Context, cl *call) (*response, error) {
	var rd io.Reader
	if cl.body != nil {
		rd = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, c.base+cl.path, rd)
	if err != nil {
		return nil, fmt.Errorf("herald: %s: %w", cl.op, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("User-Agent", c.agent)
	req.Header.Set("Accept", "application/json")
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cl.idemKey != "" {
		req.Header.Set("Idempotency-Key", cl.idemKey)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("herald: %s: %w", cl.op, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("herald: %s: reading the answer: %w", cl.op, err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, errorFrom(res.StatusCode, res.Header, body, c.now())
	}
	return &response{status: res.StatusCode, header: res.Header, body: body}, nil
}

// decode parses a 2xx answer's JSON body into v.
func decode(op string, r *response, v any) error {
	if err := json.Unmarshal(r.body, v); err != nil {
		return fmt.Errorf("herald: %s: unexpected answer (%d): %w", op, r.status, err)
	}
	return nil
}
