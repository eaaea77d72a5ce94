package origin

import (
	"errors"
	"testing"
)

func TestPolicy(t *testing.T) {
	p, err := New(Config{Allowed: []string{"https://app.example.com", "https://*.example.org", "http://localhost:3000", "https://api.example.net:8443"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		origin string
		want   bool
	}{
		{"", true}, // no Origin: not a browser cross-origin request
		{"https://app.example.com", true},
		{"https://app.example.com:443", true},
		{"https://APP.example.com", true},
		{"http://app.example.com", false},       // other scheme
		{"https://app.example.com:8443", false}, // other port
		{"https://app.example.com.evil.test", false},
		{"https://evilapp.example.com", false},
		{"https://example.com", false},
		{"null", false},
		{"https://app.example.com/", false},
		{"https://user@app.example.com", false},
		{"ws://app.example.com", false},
		{"https://a.example.org", true},
		{"https://a.b.example.org", true},
		{"https://example.org", false}, // the pattern needs a subdomain
		{"https://a.example.org.evil.test", false},
		{"https://aexample.org", false},
		{"http://localhost:3000", true},
		{"http://localhost:3001", false},
		{"https://api.example.net:8443", true},
		{"https://api.example.net", false},
		{"javascript:alert(1)", false},
		{"%", false},
	}
	for _, tc := range tests {
		if got := p.Allowed(tc.origin); got != tc.want {
			t.Errorf("Allowed(%q) = %v, want %v", tc.origin, got, tc.want)
		}
	}
}

func TestLocalhostOnlyWhenAsked(t *testing.T) {
	prod, _ := New(Config{})
	dev, _ := New(Config{AllowLocalhost: true})
	for _, o := range []string{"http://localhost:5173", "http://127.0.0.1:8080", "http://[::1]:3000", "https://localhost"} {
		if prod.Allowed(o) {
			t.Errorf("production allowed %q", o)
		}
		if !dev.Allowed(o) {
			t.Errorf("development refused %q", o)
		}
	}
	if dev.Allowed("http://localhost.evil.test") {
		t.Error("look-alike localhost allowed")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, bad := range []string{"*", "null", "app.example.com", "ftp://x.example.com", "https://*.com", "https://a.*.example.com", "https://example.com/path", "https://*"} {
		_, err := New(Config{Allowed: []string{bad}})
		if err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := New(Config{Allowed: []string{"*"}}); !errors.Is(err, ErrWildcard) {
		t.Errorf("wildcard error = %v", err)
	}
}
