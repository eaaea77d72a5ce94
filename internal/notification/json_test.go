package notification

import "testing"

func TestJSONDepth(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		want  int
	}{
		{`{}`, 4, 1},
		{`{"a":[1,{"b":2}]}`, 4, 3},
		{`{"a":"[[[[[[[[\"]]]]"}`, 4, 1}, // brackets inside strings do not count
		{`[[[[[[[[[[`, 4, 5},             // stops at limit+1
		{`"x"`, 4, 0},
		{`{"a":{"b":{}}}`, 2, 3},
	} {
		if got := JSONDepth([]byte(tc.in), tc.limit); got != tc.want {
			t.Errorf("JSONDepth(%s, %d) = %d, want %d", tc.in, tc.limit, got, tc.want)
		}
	}
}
