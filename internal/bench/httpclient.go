package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

const (
	httpDialTimeout    = 5 * time.Second
	httpRequestTimeout = 30 * time.Second // whole call: write, wait, read
	httpReadBuffer     = 4 << 10
	httpErrBodyMax     = 200 // bytes of a non-201 body kept for the report
)

var errHTTPProtocol = errors.New("bench: malformed HTTP response")

// httpPoster is a minimal HTTP/1.1 keep-alive client for one publisher: it
// POSTs JSON to one URL over one raw connection, with the request head built
// once and each request written in a single call. Next to net/http it saves
// the per-call request and header maps, the connection's two goroutines and
// their hand-offs, which at thousands of calls a second were most of the
// generator's CPU. It reads Content-Length, chunked and close-delimited
// bodies, and reconnects after errors and "Connection: close". Not safe for
// concurrent use.
type httpPoster struct {
	addr string // host:port to dial
	head []byte // request line and headers up to the Content-Length value

	nc     net.Conn
	br     *bufio.Reader
	ctx    context.Context // watched for cancellation while nc is open
	stop   func() bool     // ends the watch of ctx
	reused bool            // nc has answered a request before
	dialed bool            // the last post opened a new connection
	wbuf   []byte
	errBuf []byte
}

// newHTTPPoster prepares POSTs of JSON to rawURL, authorised with apiKey.
func newHTTPPoster(rawURL, apiKey string) (*httpPoster, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("bench: publish url: %w", err)
	}
	if u.Scheme != "http" || u.Port() == "" {
		return nil, fmt.Errorf("bench: publish url %q: want http://host:port/path", rawURL)
	}
	head := "POST " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nAuthorization: Bearer " + apiKey +
		"\r\nContent-Type: application/json\r\nContent-Length: "
	return &httpPoster{addr: u.Host, head: []byte(head)}, nil
}

// post sends body and reads the response. For statuses other than 201,
// errBody holds the first 200 bytes of the response body; it is valid until
// the next call. A request that finds a reused connection closed by the
// server (before any byte of a response) is sent again once on a new one,
// as net/http does for connections it sees closing while idle.
func (c *httpPoster) post(ctx context.Context, body []byte) (status int, errBody []byte, err error) {
	c.dialed = false
	for attempt := 0; ; attempt++ {
		reused := c.nc != nil && c.reused
		var started bool // some of the response was read
		status, errBody, started, err = c.roundTrip(ctx, body)
		if err == nil {
			return status, errBody, nil
		}
		c.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return 0, nil, fmt.Errorf("bench: publish: %w", ctxErr)
		}
		if attempt > 0 || !reused || started || !staleConnError(err) {
			return 0, nil, fmt.Errorf("bench: publish: %w", err)
		}
	}
}

func (c *httpPoster) roundTrip(ctx context.Context, body []byte) (status int, errBody []byte, started bool, err error) {
	if c.nc == nil {
		if err := c.dial(ctx); err != nil {
			return 0, nil, false, err
		}
	}
	if ctx != c.ctx {
		c.watch(ctx)
	}
	deadline := time.Now().Add(httpRequestTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := c.nc.SetDeadline(deadline); err != nil {
		return 0, nil, false, err
	}
	// After SetDeadline: a cancellation the watch saw before it is caught
	// here, a later one expires the deadline.
	if err := ctx.Err(); err != nil {
		return 0, nil, false, err
	}
	b := append(c.wbuf[:0], c.head...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	c.wbuf = b
	if _, err := c.nc.Write(b); err != nil {
		return 0, nil, false, err
	}
	status, errBody, keep, started, err := c.readResponse()
	if err != nil {
		return 0, nil, started, err
	}
	c.reused = true
	if !keep {
		c.Close()
	}
	return status, errBody, true, nil
}

func (c *httpPoster) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: httpDialTimeout}
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	c.nc, c.reused, c.dialed = nc, false, true
	if c.br == nil {
		c.br = bufio.NewReaderSize(nc, httpReadBuffer)
	} else {
		c.br.Reset(nc)
	}
	c.watch(ctx)
	return nil
}

// watch makes cancelling ctx interrupt I/O on the connection by expiring its
// deadline. One watch per connection, not per call: registering one costs
// allocations.
func (c *httpPoster) watch(ctx context.Context) {
	if c.stop != nil {
		c.stop()
	}
	nc := c.nc
	c.ctx, c.stop = ctx, context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
}

// Close closes the connection, if any; the next post dials again.
func (c *httpPoster) Close() {
	if c.nc == nil {
		return
	}
	c.stop()
	_ = c.nc.Close()
	c.nc, c.ctx, c.stop = nil, nil, nil
}

// staleConnError reports whether err is what a write to, or a read from, a
// keep-alive connection the server has closed returns.
func staleConnError(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// readResponse reads one response. keep is false when the connection must
// not be reused; started is true once any byte of the response was read.
func (c *httpPoster) readResponse() (status int, errBody []byte, keep, started bool, err error) {
	line, err := c.br.ReadSlice('\n')
	if len(line) > 0 {
		started = true
	}
	if err != nil {
		return 0, nil, false, started, err
	}
	// "HTTP/1.1 201 Created\r\n"
	if len(line) < 13 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[12] != ' ' && line[12] != '\r' {
		return 0, nil, false, true, fmt.Errorf("%w: status line %q", errHTTPProtocol, line)
	}
	code, ok := parseUint(line[9:12])
	if !ok {
		return 0, nil, false, true, fmt.Errorf("%w: status line %q", errHTTPProtocol, line)
	}
	status, keep = int(code), line[7] == '1' // HTTP/1.0 closes unless it says keep-alive
	length, chunked := int64(-1), false
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, nil, false, true, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, nil, false, true, fmt.Errorf("%w: header line %q", errHTTPProtocol, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, ok := parseUint(value)
			if !ok {
				return 0, nil, false, true, fmt.Errorf("%w: Content-Length %q", errHTTPProtocol, value)
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
			if !chunked {
				return 0, nil, false, true, fmt.Errorf("%w: Transfer-Encoding %q", errHTTPProtocol, value)
			}
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				keep = true
			}
		}
	}
	c.errBuf = c.errBuf[:0]
	keepBody := status != 201
	switch {
	case status/100 == 1: // no Expect header is sent: nothing should come before the final response
		return 0, nil, false, true, fmt.Errorf("%w: unexpected status %d", errHTTPProtocol, status)
	case status == 204 || status == 304:
		// no body
	case chunked:
		err = c.readChunked(keepBody)
	case length >= 0:
		err = c.readBody(length, keepBody)
	default: // the body runs to the end of the connection
		keep = false
		err = c.readBody(-1, keepBody)
	}
	if err != nil {
		return 0, nil, false, true, err
	}
	if keepBody {
		errBody = c.errBuf
	}
	return status, errBody, keep, true, nil
}

// readBody consumes n bytes of body (n < 0: up to EOF), keeping the first
// httpErrBodyMax in errBuf when keepBody is set.
func (c *httpPoster) readBody(n int64, keepBody bool) error {
	for n != 0 {
		want := c.br.Size()
		if n > 0 && n < int64(want) {
			want = int(n)
		}
		p, err := c.br.Peek(want)
		if len(p) == 0 && err != nil {
			if n < 0 && errors.Is(err, io.EOF) {
				return nil
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if keepBody && len(c.errBuf) < httpErrBodyMax {
			c.errBuf = append(c.errBuf, p[:min(len(p), httpErrBodyMax-len(c.errBuf))]...)
		}
		_, _ = c.br.Discard(len(p))
		if n > 0 {
			n -= int64(len(p))
		}
	}
	return nil
}

// readChunked consumes a chunked body and its trailers.
func (c *httpPoster) readChunked(keepBody bool) error {
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 { // chunk extensions
			line = line[:i]
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("%w: chunk size %q", errHTTPProtocol, line)
		}
		if size == 0 {
			break
		}
		if err := c.readBody(size, keepBody); err != nil {
			return err
		}
		if crlf, err := c.br.ReadSlice('\n'); err != nil || len(bytes.TrimRight(crlf, "\r\n")) != 0 {
			return fmt.Errorf("%w: chunk not followed by CRLF", errHTTPProtocol)
		}
	}
	for { // trailers up to the empty line
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return nil
		}
	}
}
