package admission

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ParseTrustedProxies parses a comma-separated list of CIDR prefixes or
// single addresses (--trusted-proxies).
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, raw := range list {
		for _, s := range strings.Split(raw, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if !strings.Contains(s, "/") {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return nil, fmt.Errorf("admission: trusted proxy %q: %w", s, err)
				}
				out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("admission: trusted proxy %q: %w", s, err)
			}
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

// IPRule finds a request's client address. The zero value trusts no proxy:
// the client is the TCP peer.
type IPRule struct {
	Trusted []netip.Prefix // static
}

func (r IPRule) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP is the address a request comes from. When the TCP peer is a
// trusted proxy, the rightmost X-Forwarded-For entry that is not itself a
// trusted proxy is the client (entries left of it could be forged by the
// client); X-Real-IP is used when there is no X-Forwarded-For. Headers from
// any other peer are ignored.
func (r IPRule) ClientIP(req *http.Request) string {
	peer := peerAddr(req.RemoteAddr)
	a, err := netip.ParseAddr(peer)
	if err != nil || len(r.Trusted) == 0 || !r.trusted(a) {
		return peer
	}
	xff := req.Header.Values("X-Forwarded-For")
	for i := len(xff) - 1; i >= 0; i-- {
		parts := strings.Split(xff[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			hop, err := netip.ParseAddr(peerAddr(strings.TrimSpace(parts[j])))
			if err != nil {
				return peer // a garbled chain: trust nothing in it
			}
			if !r.trusted(hop) {
				return hop.Unmap().String()
			}
		}
	}
	if len(xff) == 0 {
		if hop, err := netip.ParseAddr(strings.TrimSpace(req.Header.Get("X-Real-IP"))); err == nil {
			return hop.Unmap().String()
		}
	}
	return peer
}

// peerAddr strips the port (and IPv6 brackets) of host:port.
func peerAddr(hostport string) string {
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		return host
	}
	return strings.Trim(hostport, "[]")
}
