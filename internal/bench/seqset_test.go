package bench

import (
	"slices"
	"testing"
)

func TestSeqSetMissing(t *testing.T) {
	var acked, got seqSet
	acked.addAll([]int64{1, 2, 3, 64, 65, 200})
	got.add(2)
	got.add(65)
	got.add(300) // delivered but never acknowledged (refused, committed all the same)
	var other seqSet
	other.add(1)
	got.union(other.words()) // a second worker's report
	n, first := acked.missing(&got, 2)
	if n != 3 || !slices.Equal(first, []int64{3, 64}) {
		t.Errorf("acked, not delivered: %d %v; want 3 [3 64]", n, first)
	}
	if n, _ := got.missing(&acked, 0); n != 1 {
		t.Errorf("delivered, not acked: %d; want 1", n)
	}
}
