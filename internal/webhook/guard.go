package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Defaults of the HTTP client.
const (
	// DefaultAttemptTimeout bounds one delivery attempt (connect, send,
	// response headers and the capped body).
	DefaultAttemptTimeout = 10 * time.Second
	// MaxResponseBody is how much of a receiver's response is read (the
	// rest is discarded by closing the connection).
	MaxResponseBody = 4 << 10
	// MaxURLLen bounds an endpoint URL.
	MaxURLLen = 2048
)

// ErrForbiddenAddress: the URL names, or resolves to, a link-local or
// cloud-metadata address, and those are not allowed.
var ErrForbiddenAddress = errors.New("webhook: link-local and cloud-metadata addresses are refused (see --webhook-allow-link-local)")

// ErrBadURL: not an absolute http(s) URL with a host.
var ErrBadURL = errors.New("webhook: the URL must be an absolute http or https URL with a host and no user info")

// metadataHosts are names of cloud metadata services. Their addresses are
// link-local too (refused at dial time), but a name is refused at once.
var metadataHosts = map[string]bool{
	"metadata":                     true,
	"metadata.google.internal":     true,
	"metadata.goog":                true,
	"metadata.azure.com":           true,
	"instance-data":                true,
	"instance-data.ec2.internal":   true,
	"metadata.platformequinix.com": true,
	"metadata.packet.net":          true,
}

// metadataAddrs are metadata services outside the link-local ranges.
var metadataAddrs = []netip.Prefix{
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud
	netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS IMDS over IPv6
	netip.MustParsePrefix("168.63.129.16/32"),   // Azure wireserver
}

// forbiddenAddr reports whether a is link-local (169.254.0.0/16,
// fe80::/10, and their IPv4-mapped forms) or a known metadata address.
func forbiddenAddr(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() {
		return true
	}
	for _, p := range metadataAddrs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// CheckURL validates an endpoint URL: http(s), a host, no user info, and
// unless allowLinkLocal no link-local or metadata host. Names are checked
// again, resolved, at every dial (DNS may change after this check).
func CheckURL(raw string, allowLinkLocal bool) error {
	if raw == "" || len(raw) > MaxURLLen {
		return ErrBadURL
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return ErrBadURL
	}
	if allowLinkLocal {
		return nil
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if metadataHosts[host] {
		return ErrForbiddenAddress
	}
	if a, err := netip.ParseAddr(host); err == nil && forbiddenAddr(a) {
		return ErrForbiddenAddress
	}
	return nil
}

// dialControl refuses connections to forbidden addresses: it runs after
// name resolution, on the address actually dialled, so a name that
// resolves (or re-resolves) to a metadata address is caught.
func dialControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook: dial %s: %w", address, err)
	}
	if forbiddenAddr(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, ap.Addr())
	}
	return nil
}

// NewClient returns the HTTP client webhooks are sent with: a timeout per
// attempt, no redirects followed (a 3xx is a failed attempt), no proxy
// from the environment, and unless allowLinkLocal a dialer that refuses
// link-local and metadata addresses.
func NewClient(timeout time.Duration, allowLinkLocal bool) *http.Client {
	if timeout <= 0 {
		timeout = DefaultAttemptTimeout
	}
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !allowLinkLocal {
		d.Control = dialControl
	}
	tr := &http.Transport{
		Proxy:                  nil, // a proxy would dial for us, past the guard
		DialContext:            d.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 16 << 10,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
