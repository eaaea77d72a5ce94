package topic

import (
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"simple", "project.42", true},
		{"every allowed byte", "aZ09._:-", true},
		{"max length", strings.Repeat("a", MaxNameLen), true},
		{"empty", "", false},
		{"too long", strings.Repeat("a", MaxNameLen+1), false},
		{"space", "project 42", false},
		{"slash", "a/b", false},
		{"star", "project.*", false},
		{"non-ASCII", "projét", false},
		{"NUL", "a\x00", false},
		{"comma", "a,b", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Valid(tc.in); got != tc.want {
				t.Fatalf("Valid(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestPatternsAndAllowed(t *testing.T) {
	pats := Patterns([]string{"project.*", "chat:general", "bad name", "a*b", "**", ""})
	if strings.Join(pats, "|") != "project.*|chat:general" {
		t.Fatalf("Patterns kept %q", pats)
	}
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"project.42", true},
		{"project.", true},
		{"project", false},
		{"projectX", false},
		{"chat:general", true},
		{"chat:general2", false},
		{"other", false},
	} {
		if got := Allowed(pats, tc.name); got != tc.want {
			t.Errorf("Allowed(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !Allowed([]string{"*"}, "anything") {
		t.Error(`"*" does not admit every name`)
	}
	if Allowed(nil, "x") {
		t.Error("no patterns admit a name")
	}
	many := make([]string, MaxPatterns+10)
	for i := range many {
		many[i] = "t"
	}
	if len(Patterns(many)) != MaxPatterns {
		t.Error("Patterns does not cap the list")
	}
}

func TestSplit(t *testing.T) {
	if got := Split(" a, b ,c"); strings.Join(got, "|") != "a|b|c" {
		t.Fatalf("Split = %q", got)
	}
	if got := Split("a,,b"); len(got) != 3 || got[1] != "" {
		t.Fatalf("Split kept no empty item: %q", got)
	}
	if Split("") != nil {
		t.Fatal("Split of empty is not nil")
	}
}
