package bench

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// worstKept is how many of the slowest deliveries of each class a run keeps
// with their context, so that a maximum can be explained: one per publish
// (a slow broadcast is slow for most of its receivers, and ten copies of it
// would hide the next slowest publish).
const worstKept = 10

// Delivery classes of the latency figures.
const (
	// ClassLive: published after the receiving session's ready message was
	// read; the publish→deliver latency of a connected client.
	ClassLive = "live"
	// ClassReplay: published before the session was ready (while the client
	// was away or still dialling) and delivered by the resume's catch-up; its
	// latency includes the client's time away and its dial.
	ClassReplay = "replay"
)

// LatencySample is one slow delivery with what its receiver knew about it.
type LatencySample struct {
	LatencyMs float64   `json:"latency_ms"` // publish → deliver
	Seq       int64     `json:"seq"`        // the publish (data.s)
	Class     string    `json:"class"`      // ClassLive or ClassReplay
	At        time.Time `json:"at"`         // when it was delivered (UTC)
	User      int64     `json:"user"`
	URL       string    `json:"url"` // the node the session was on
	Transport string    `json:"transport"`
	Position  string    `json:"position"`
	Broadcast bool      `json:"broadcast"`
	// First: the session's first notification.
	First bool `json:"first"`
	// Resumed: the session was a resume (not the user's first connect).
	Resumed bool `json:"resumed"`
	// DialAttempts of this session (1 when its first attempt succeeded).
	DialAttempts int `json:"dial_attempts"`
	// DialMs is the successful attempt, connect to ready; ConnectMs its TCP
	// connect, and SynRetrans the SYNs the kernel sent again during it.
	DialMs     float64 `json:"dial_ms"`
	ConnectMs  float64 `json:"connect_ms"`
	SynRetrans int     `json:"syn_retrans"`
	// SinceDialMs is the time from the start of the session's first dial
	// attempt to this delivery.
	SinceDialMs float64 `json:"since_dial_ms"`
	// PublishedBeforeReadyMs is ready − publish: positive when the
	// notification was published before the session was ready.
	PublishedBeforeReadyMs float64 `json:"published_before_ready_ms"`
}

// sessionTimes is what a user knows about its current session's dial, in
// unix ns; the run goroutine sets it before the session's Read starts.
type sessionTimes struct {
	firstAttempt int64 // the first attempt of this (re)connect began
	attempt      int64 // the successful attempt began
	ready        int64 // the ready message was read (Dial returned)
	attempts     int
	resumed      bool
	tcp          DialTiming // the successful attempt's connect
}

// sample builds a LatencySample for a delivery of d at now (unix ns).
func (s *sessionTimes) sample(d *Delivery, now int64, first bool) LatencySample {
	ms := func(ns int64) float64 { return round(float64(ns)/1e6, 3) }
	class := ClassLive
	if d.Sent < s.ready {
		class = ClassReplay
	}
	return LatencySample{
		LatencyMs: ms(now - d.Sent), Seq: d.Seq, Class: class, At: time.Unix(0, now).UTC(),
		Position: d.Position.String(), Broadcast: d.Broadcast, First: first, Resumed: s.resumed,
		DialAttempts: s.attempts, DialMs: ms(s.ready - s.attempt), SinceDialMs: ms(now - s.firstAttempt),
		ConnectMs: ms(s.tcp.ConnectNs), SynRetrans: s.tcp.SynRetrans,
		PublishedBeforeReadyMs: ms(s.ready - d.Sent),
	}
}

// PublishSample is one slow publish call.
type PublishSample struct {
	HTTPMs  float64   `json:"http_ms"` // the call's round trip
	Seq     int64     `json:"seq"`     // its first item
	Items   int       `json:"items"`
	Stream  string    `json:"stream"` // unicast or broadcast
	URL     string    `json:"url"`
	Status  string    `json:"status"` // HTTP status, or "error"
	At      time.Time `json:"at"`     // when the call began (UTC)
	NewConn bool      `json:"new_conn"`
}

// worst keeps the n slowest samples offered, at most one per publish (the
// seq of a sample). offer is cheap for the common case (a sample faster
// than every kept one): one atomic load.
type worst[T any] struct {
	n     int
	seq   func(T) int64
	floor atomic.Int64 // µs: the fastest kept sample once n are kept, else 0

	mu   sync.Mutex
	kept []worstEntry[T] // guarded by mu; unordered, at most n
}

type worstEntry[T any] struct {
	us int64
	s  T
}

func newWorst[T any](n int, seq func(T) int64) *worst[T] { return &worst[T]{n: n, seq: seq} }

func newLatencyWorst() *worst[LatencySample] {
	return newWorst(worstKept, func(s LatencySample) int64 { return s.Seq })
}

// offer keeps the sample that mk builds when us (its latency in µs) is among
// the n largest so far; mk is called only when us is above the floor.
func (w *worst[T]) offer(us int64, mk func() T) {
	if us <= w.floor.Load() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	s := mk()
	for i, e := range w.kept {
		if w.seq(e.s) == w.seq(s) { // another receiver of the same publish
			if us > e.us {
				w.kept[i] = worstEntry[T]{us, s}
				w.refloor()
			}
			return
		}
	}
	if len(w.kept) < w.n {
		w.kept = append(w.kept, worstEntry[T]{us, s})
		w.refloor()
		return
	}
	lo := 0
	for i, e := range w.kept {
		if e.us < w.kept[lo].us {
			lo = i
		}
	}
	if us <= w.kept[lo].us {
		return
	}
	w.kept[lo] = worstEntry[T]{us, s}
	w.refloor()
}

// refloor sets floor to the fastest kept sample once n are kept. Callers
// hold mu.
func (w *worst[T]) refloor() {
	if len(w.kept) < w.n {
		return
	}
	m := w.kept[0].us
	for _, e := range w.kept[1:] {
		m = min(m, e.us)
	}
	w.floor.Store(m)
}

// samples returns the kept samples, slowest first.
func (w *worst[T]) samples() []T {
	w.mu.Lock()
	kept := append([]worstEntry[T](nil), w.kept...)
	w.mu.Unlock()
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].us > kept[j].us })
	out := make([]T, len(kept))
	for i, e := range kept {
		out[i] = e.s
	}
	return out
}

// slowestFirst sorts samples by latency, slowest first, and keeps the
// slowest of each publish, at most n.
func slowestFirst(s []LatencySample, n int) []LatencySample {
	sort.SliceStable(s, func(i, j int) bool { return s[i].LatencyMs > s[j].LatencyMs })
	out, seen := s[:0], map[int64]bool{}
	for _, x := range s {
		if !seen[x.Seq] && len(out) < n {
			seen[x.Seq] = true
			out = append(out, x)
		}
	}
	return out
}

// splitWorst returns the slowest live and replayed samples of all workers,
// at most worstKept of each, slowest first.
func splitWorst(all []LatencySample) (live, replay []LatencySample) {
	for _, s := range all {
		if s.Class == ClassReplay {
			replay = append(replay, s)
		} else {
			live = append(live, s)
		}
	}
	return slowestFirst(live, worstKept), slowestFirst(replay, worstKept)
}
