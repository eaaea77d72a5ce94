package admission

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func mustPrefixes(t testing.TB, list ...string) []netip.Prefix {
	t.Helper()
	p, err := ParseTrustedProxies(list)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClientIP(t *testing.T) {
	proxies := []string{"10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.254"}
	tests := []struct {
		name    string
		trusted []string
		peer    string // RemoteAddr
		xff     []string
		realIP  string
		want    string
	}{
		{name: "no trusted proxies: the peer", peer: "203.0.113.7:5000", xff: []string{"198.51.100.1"},
			realIP: "198.51.100.2", want: "203.0.113.7"},
		{name: "untrusted peer: its headers are ignored", trusted: proxies, peer: "203.0.113.7:5000",
			xff: []string{"198.51.100.1"}, realIP: "198.51.100.2", want: "203.0.113.7"},
		{name: "trusted peer without headers: the peer", trusted: proxies, peer: "10.1.2.3:5000", want: "10.1.2.3"},
		{name: "trusted peer: the forwarded client", trusted: proxies, peer: "10.1.2.3:5000",
			xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "single trusted address", trusted: proxies, peer: "192.0.2.254:80",
			xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "address next to a single trusted address", trusted: proxies, peer: "192.0.2.253:80",
			xff: []string{"198.51.100.1"}, want: "192.0.2.253"},
		{name: "rightmost untrusted hop", trusted: proxies, peer: "10.0.0.1:80",
			xff: []string{"1.1.1.1, 198.51.100.1, 10.0.0.2,10.0.0.3"}, want: "198.51.100.1"},
		{name: "a forged leftmost entry is not believed", trusted: proxies, peer: "10.0.0.1:80",
			xff: []string{"10.9.9.9, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "multiple headers: the last one first", trusted: proxies, peer: "10.0.0.1:80",
			xff: []string{"1.1.1.1", "198.51.100.1, 10.0.0.2"}, want: "198.51.100.1"},
		{name: "multiple headers: the chain goes on in earlier headers", trusted: proxies, peer: "10.0.0.1:80",
			xff: []string{"1.1.1.1, 198.51.100.1", "10.0.0.2", "10.0.0.3"}, want: "198.51.100.1"},
		{name: "garbled chain: the peer", trusted: proxies, peer: "10.0.0.1:80",
			xff: []string{"198.51.100.1, not-an-ip"}, want: "10.0.0.1"},
		{name: "garbled trailing header: the peer", trusted: proxies, peer: "10.0.0.1:80",
			xff: []string{"198.51.100.1", "unknown"}, want: "10.0.0.1"},
		{name: "empty header: the peer", trusted: proxies, peer: "10.0.0.1:80", xff: []string{""}, want: "10.0.0.1"},
		{name: "empty hop: the peer", trusted: proxies, peer: "10.0.0.1:80", xff: []string{"198.51.100.1,,10.0.0.2"},
			want: "10.0.0.1"},
		{name: "garbage left of the client is never read", trusted: proxies, peer: "10.0.0.1:80",
			xff: []string{"not-an-ip, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "only trusted hops: the peer", trusted: proxies, peer: "10.0.0.1:80",
			xff: []string{"10.0.0.2, 10.0.0.3"}, realIP: "198.51.100.9", want: "10.0.0.1"},
		{name: "hop with a port", trusted: proxies, peer: "10.0.0.1:80", xff: []string{"198.51.100.1:4711"},
			want: "198.51.100.1"},
		{name: "X-Real-IP without X-Forwarded-For", trusted: proxies, peer: "10.0.0.1:80", realIP: "198.51.100.9",
			want: "198.51.100.9"},
		{name: "X-Real-IP IPv4-mapped", trusted: proxies, peer: "10.0.0.1:80", realIP: "::ffff:198.51.100.9",
			want: "198.51.100.9"},
		{name: "garbled X-Real-IP: the peer", trusted: proxies, peer: "10.0.0.1:80", realIP: "nope", want: "10.0.0.1"},
		{name: "X-Forwarded-For wins over X-Real-IP", trusted: proxies, peer: "10.0.0.1:80",
			xff: []string{"198.51.100.1"}, realIP: "198.51.100.9", want: "198.51.100.1"},
		{name: "IPv6 peer and client", trusted: proxies, peer: "[2001:db8:ffff::1]:443",
			xff: []string{"2001:db8:1::5, 2001:db8:ffff::2"}, want: "2001:db8:1::5"},
		{name: "IPv6 hop with brackets and port", trusted: proxies, peer: "[2001:db8:ffff::1]:443",
			xff: []string{"[2001:db8:1::5]:8443"}, want: "2001:db8:1::5"},
		{name: "untrusted IPv6 peer", trusted: proxies, peer: "[2001:db8:1::1]:443",
			xff: []string{"198.51.100.1"}, want: "2001:db8:1::1"},
		{name: "IPv4-mapped trusted peer", trusted: proxies, peer: "[::ffff:10.0.0.1]:80",
			xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "IPv4-mapped trusted hop", trusted: proxies, peer: "10.0.0.1:80",
			xff: []string{"198.51.100.1, ::ffff:10.0.0.2"}, want: "198.51.100.1"},
		{name: "IPv4-mapped client is unmapped", trusted: proxies, peer: "10.0.0.1:80",
			xff: []string{"::ffff:198.51.100.1"}, want: "198.51.100.1"},
		{name: "peer without a port", trusted: proxies, peer: "10.0.0.1", xff: []string{"198.51.100.1"},
			want: "198.51.100.1"},
		{name: "unparseable peer", trusted: proxies, peer: "@", xff: []string{"198.51.100.1"}, want: "@"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule := IPRule{Trusted: mustPrefixes(t, tt.trusted...)}
			req := httptest.NewRequest(http.MethodGet, "/v1/ws", nil)
			req.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			if tt.realIP != "" {
				req.Header.Set("X-Real-IP", tt.realIP)
			}
			if got := rule.ClientIP(req); got != tt.want {
				t.Errorf("ClientIP = %q, want %q", got, tt.want)
			}
			c := New(Config{TrustedProxies: rule})
			if got := c.ClientIP(req); got != tt.want {
				t.Errorf("Controller.ClientIP = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	tests := []struct {
		name    string
		list    []string
		want    []string // prefixes, or nil
		wantErr string   // a substring of the error; "" for none
	}{
		{name: "none", list: nil, want: nil},
		{name: "empty entries", list: []string{"", " , ,"}, want: nil},
		{name: "IPv4 prefix", list: []string{"10.0.0.0/8"}, want: []string{"10.0.0.0/8"}},
		{name: "prefix is masked", list: []string{"10.1.2.3/8"}, want: []string{"10.0.0.0/8"}},
		{name: "IPv4 address", list: []string{"192.0.2.1"}, want: []string{"192.0.2.1/32"}},
		{name: "IPv6 address", list: []string{"2001:db8::1"}, want: []string{"2001:db8::1/128"}},
		{name: "IPv6 prefix", list: []string{"2001:db8::/32"}, want: []string{"2001:db8::/32"}},
		{name: "IPv4-mapped address is unmapped", list: []string{"::ffff:192.0.2.1"}, want: []string{"192.0.2.1/32"}},
		{name: "comma-separated with spaces", list: []string{" 10.0.0.0/8 , 192.0.2.1", "2001:db8::/32"},
			want: []string{"10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32"}},
		{name: "bad address", list: []string{"10.0.0.0/8, proxy.internal"}, wantErr: `"proxy.internal"`},
		{name: "short address", list: []string{"10.0.0"}, wantErr: `"10.0.0"`},
		{name: "bad prefix length", list: []string{"10.0.0.0/33"}, wantErr: `"10.0.0.0/33"`},
		{name: "bad prefix address", list: []string{"10.0.0/8"}, wantErr: `"10.0.0/8"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTrustedProxies(tt.list)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "admission: ") {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var gotS []string
			for _, p := range got {
				gotS = append(gotS, p.String())
			}
			if strings.Join(gotS, " ") != strings.Join(tt.want, " ") {
				t.Errorf("got %v, want %v", gotS, tt.want)
			}
		})
	}
}
