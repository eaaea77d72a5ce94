// Package defaults fills in the fields of a Config that were left unset.
package defaults

// Positive sets *p to v when *p is zero or negative: the documented
// default of a duration, size or count left unset.
func Positive[T ~int | ~int64](p *T, v T) {
	if *p <= 0 {
		*p = v
	}
}
