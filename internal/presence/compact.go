package presence

// compact is a user's connections over the connection transports, as a
// node keeps them for every online user: counters in place, with the
// other names in entry.other. A Counts map of one entry costs ~250
// bytes; with the copy a single node's directory kept, that was half a
// kilobyte per idle connection (docs/benchmarks.md, issue 14).
type compact [len(compactNames)]int32

// compactNames are the transports that hold connections
// (admission.ConnTransports).
var compactNames = [...]string{"ws", "sse", "socketio"}

func compactIndex(transport string) int {
	for i, name := range compactNames {
		if name == transport {
			return i
		}
	}
	return -1
}

// add changes transport's count by d; counts never go below zero.
func (e *entry) add(transport string, d int) {
	if i := compactIndex(transport); i >= 0 {
		e.counts[i] = max(e.counts[i]+int32(d), 0)
		return
	}
	n := max(e.other[transport]+int32(d), 0)
	switch {
	case n > 0 && e.other == nil:
		e.other = map[string]int32{transport: n}
	case n > 0:
		e.other[transport] = n
	default:
		delete(e.other, transport)
	}
}

// total is the number of connections.
func (e *entry) total() int {
	t := 0
	for _, n := range e.counts {
		t += int(n)
	}
	for _, n := range e.other {
		t += int(n)
	}
	return t
}

// countsMap is e's counts as the Directory takes them: the transports
// with connections.
func (e *entry) countsMap() Counts {
	out := Counts{}
	for i, n := range e.counts {
		if n > 0 {
			out[compactNames[i]] = int(n)
		}
	}
	for t, n := range e.other {
		out[t] = int(n)
	}
	return out
}
