// Package origin decides which browser origins may open connections and make
// credentialed CORS requests. There is no wildcard: every allowed origin is an
// exact scheme://host[:port] or a "*.example.com"-style subdomain pattern with
// an explicit scheme. Requests without an Origin header (native apps,
// services) are not browser cross-origin requests and are allowed here; they
// must still authenticate.
//
// A Policy is immutable after construction and safe for concurrent use.
package origin

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ErrWildcard is returned for "*": a wildcard origin would let any site use
// a logged-in user's token-bearing connection.
var ErrWildcard = errors.New("origin: the wildcard origin \"*\" is not allowed; list each origin (patterns like https://*.example.com are)")

type pattern struct {
	scheme string
	host   string // exact host, or the suffix after "*." for subdomain patterns
	port   string // "" = the scheme's default port; "*" = any port
	sub    bool   // "*.host" pattern: matches one or more labels before host
}

// Policy is an origin allowlist.
type Policy struct {
	patterns []pattern // static after New
}

// Config lists allowed origins.
type Config struct {
	// Allowed: exact origins ("https://app.example.com", "http://localhost:3000")
	// and subdomain patterns ("https://*.example.com").
	Allowed []string
	// AllowLocalhost adds http(s)://localhost, 127.0.0.1 and [::1] on any port
	// (development only).
	AllowLocalhost bool
}

// New parses cfg.
func New(cfg Config) (*Policy, error) {
	p := &Policy{}
	for i, raw := range cfg.Allowed {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		pt, err := parse(raw)
		if err != nil {
			return nil, fmt.Errorf("origin: entry %d (%q): %w", i+1, raw, err)
		}
		p.patterns = append(p.patterns, pt)
	}
	if cfg.AllowLocalhost {
		for _, s := range []string{"http", "https"} {
			for _, h := range []string{"localhost", "127.0.0.1", "[::1]"} {
				p.patterns = append(p.patterns, pattern{scheme: s, host: h, port: "*"})
			}
		}
	}
	return p, nil
}

func parse(raw string) (pattern, error) {
	if raw == "*" || raw == "null" {
		return pattern{}, ErrWildcard
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return pattern{}, errors.New("must start with http:// or https://")
	}
	if strings.ContainsAny(rest, "/?#@ \t") {
		return pattern{}, errors.New("must be scheme://host[:port] with no path, query or user info")
	}
	pt := pattern{scheme: scheme}
	host, port := splitHostPort(rest)
	if strings.HasPrefix(host, "*.") {
		pt.sub = true
		host = host[2:]
	}
	if host == "" || strings.Contains(host, "*") {
		return pattern{}, errors.New("wildcards are allowed only as a leading \"*.\" label")
	}
	if pt.sub && !strings.Contains(host, ".") {
		return pattern{}, errors.New("a subdomain pattern needs a registrable domain (*.example.com)")
	}
	pt.host = strings.ToLower(host)
	pt.port = normPort(scheme, port)
	return pt, nil
}

func splitHostPort(s string) (host, port string) {
	if strings.HasPrefix(s, "[") { // IPv6 literal
		if i := strings.Index(s, "]"); i >= 0 {
			host, rest := s[:i+1], s[i+1:]
			return host, strings.TrimPrefix(rest, ":")
		}
		return s, ""
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

func normPort(scheme, port string) string {
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		return ""
	}
	return port
}

// Allowed reports whether a browser on origin may connect. The empty string
// (no Origin header) is allowed; "null" and malformed origins are not.
func (p *Policy) Allowed(origin string) bool {
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Path != "" || u.RawQuery != "" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return false
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(u.Host, "[") {
		host = "[" + host + "]"
	}
	port := normPort(u.Scheme, u.Port())
	for _, pt := range p.patterns {
		if pt.scheme != u.Scheme || (pt.port != "*" && pt.port != port) {
			continue
		}
		if pt.sub {
			if strings.HasSuffix(host, "."+pt.host) && len(host) > len(pt.host)+1 {
				return true
			}
			continue
		}
		if host == pt.host {
			return true
		}
	}
	return false
}

// Check reports whether r's Origin header is allowed.
func (p *Policy) Check(r *http.Request) bool {
	return p.Allowed(r.Header.Get("Origin"))
}

// Len is the number of patterns (for start-up logs).
func (p *Policy) Len() int { return len(p.patterns) }
