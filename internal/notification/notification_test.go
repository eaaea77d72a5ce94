package notification

import (
	"errors"
	"testing"
)

func TestParsePosition(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Position
		ok   bool
	}{
		{"empty is start", "", Position{}, true},
		{"zero", "0.0", Position{}, true},
		{"both", "12.7", Position{12, 7}, true},
		{"max int64", "9223372036854775807.1", Position{9223372036854775807, 1}, true},
		{"overflow", "9223372036854775808.1", Position{}, false},
		{"no dot", "12", Position{}, false},
		{"two dots", "1.2.3", Position{}, false},
		{"negative", "-1.2", Position{}, false},
		{"plus", "+1.2", Position{}, false},
		{"space", " 1.2", Position{}, false},
		{"empty part", "1.", Position{}, false},
		{"hex", "0x1.2", Position{}, false},
		{"too long", "1111111111111111111.11111111111111111111111", Position{}, false},
		{"unicode digit", "١.2", Position{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePosition(tc.in)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrBadPosition) {
				t.Fatalf("err %v is not ErrBadPosition", err)
			}
			if got != tc.want {
				t.Fatalf("got %+v want %+v", got, tc.want)
			}
			if tc.ok && tc.in != "" && got.String() != tc.in {
				t.Fatalf("round trip %q -> %q", tc.in, got.String())
			}
		})
	}
}

func TestPositionAfter(t *testing.T) {
	if !(Position{2, 1}).After(Position{1, 1}) || (Position{1, 1}).After(Position{1, 1}) || (Position{2, 0}).After(Position{1, 1}) {
		t.Fatal("After is wrong")
	}
}

func TestAudienceMatches(t *testing.T) {
	tenant := Audience{Kind: AudienceTenant}
	role := Audience{Kind: AudienceRole, Role: "admin"}
	users := Audience{Kind: AudienceUsers, Users: []string{"a"}}
	if !tenant.Matches("") || !role.Matches("admin") || role.Matches("") || role.Matches("member") || users.Matches("admin") {
		t.Fatal("Matches is wrong")
	}
	if tenant.Key() != "*" || role.Key() != "role:admin" || users.Key() != "" || !role.Broadcast() || users.Broadcast() {
		t.Fatal("Key/Broadcast is wrong")
	}
}

func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"", "0.0", "12.7", "1.", "-1.2", "9223372036854775807.9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePosition(s)
		if err != nil {
			return
		}
		if p.User < 0 || p.Tenant < 0 {
			t.Fatalf("negative position from %q", s)
		}
		if s != "" {
			q, err := ParsePosition(p.String())
			if err != nil || q != p {
				t.Fatalf("round trip of %q failed", s)
			}
		}
	})
}
