package presence

// compact is a user's connections per transport as a node keeps them for
// every online user: counters for the connection transports in place,
// and a map only for other names. A Counts map of one entry costs ~250
// bytes; with the copy a single node's directory kept, that was half a
// kilobyte per idle connection (docs/benchmarks.md, issue 14).
type compact struct {
	n     [len(compactNames)]int32
	other map[string]int32 // names outside compactNames; nil until one comes
}

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
func (c *compact) add(transport string, d int) {
	if i := compactIndex(transport); i >= 0 {
		c.n[i] = max(c.n[i]+int32(d), 0)
		return
	}
	n := max(c.other[transport]+int32(d), 0)
	switch {
	case n > 0 && c.other == nil:
		c.other = map[string]int32{transport: n}
	case n > 0:
		c.other[transport] = n
	default:
		delete(c.other, transport)
	}
}

// total is the number of connections.
func (c *compact) total() int {
	t := 0
	for _, n := range c.n {
		t += int(n)
	}
	for _, n := range c.other {
		t += int(n)
	}
	return t
}

// counts is c as the Directory takes it: the transports with connections.
func (c *compact) counts() Counts {
	out := Counts{}
	for i, n := range c.n {
		if n > 0 {
			out[compactNames[i]] = int(n)
		}
	}
	for t, n := range c.other {
		out[t] = int(n)
	}
	return out
}
