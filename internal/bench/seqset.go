package bench

import (
	"math/bits"
	"sync"
)

// seqSet is a set of publish sequence numbers (data.s), a bitmap that grows
// as needed. The coordinator keeps the numbers the server answered 201 for,
// each worker the numbers its users received; comparing them names every
// acknowledged notification that was never delivered, which counts alone
// cannot (a lost one and a delivered-but-refused one would cancel out).
// Safe for concurrent use.
type seqSet struct {
	mu   sync.Mutex
	bits []uint64 // guarded by mu: bit n%64 of word n/64 is sequence number n
}

func (s *seqSet) add(n int64) {
	s.mu.Lock()
	s.setLocked(n)
	s.mu.Unlock()
}

func (s *seqSet) addAll(ns []int64) {
	s.mu.Lock()
	for _, n := range ns {
		s.setLocked(n)
	}
	s.mu.Unlock()
}

func (s *seqSet) setLocked(n int64) {
	if n < 0 {
		return
	}
	w := int(n / 64)
	if w >= len(s.bits) {
		grown := make([]uint64, max(w+1, 2*len(s.bits)))
		copy(grown, s.bits)
		s.bits = grown
	}
	s.bits[w] |= 1 << uint(n%64)
}

// words returns a copy of the bitmap (for a report).
func (s *seqSet) words() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.bits...)
}

// union adds a bitmap from words.
func (s *seqSet) union(words []uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(words) > len(s.bits) {
		grown := make([]uint64, len(words))
		copy(grown, s.bits)
		s.bits = grown
	}
	for i, w := range words {
		s.bits[i] |= w
	}
}

// missing returns how many members of s are not in other, and the first
// few of them (at most keep).
func (s *seqSet) missing(other *seqSet, keep int) (n int64, first []int64) {
	mine, theirs := s.words(), other.words()
	for i, w := range mine {
		if i < len(theirs) {
			w &^= theirs[i]
		}
		n += int64(bits.OnesCount64(w))
		for w != 0 && len(first) < keep {
			b := bits.TrailingZeros64(w)
			first = append(first, int64(i*64+b))
			w &^= 1 << uint(b)
		}
	}
	return n, first
}
