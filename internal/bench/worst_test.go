package bench

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestWorstKeepsSlowest(t *testing.T) {
	w := newWorst(3, func(s LatencySample) int64 { return s.Seq })
	built := 0
	for _, us := range rand.Perm(100) { // latencies 0..99 µs in random order
		w.offer(int64(us), func() LatencySample {
			built++
			return LatencySample{LatencyMs: float64(us), Seq: int64(us)}
		})
	}
	got := w.samples()
	if len(got) != 3 || got[0].LatencyMs != 99 || got[1].LatencyMs != 98 || got[2].LatencyMs != 97 {
		t.Fatalf("kept %+v, want 99, 98, 97 µs", got)
	}
	if built >= 100 {
		t.Errorf("built %d samples for 100 offers: the floor does not filter", built)
	}
	w.offer(97, func() LatencySample {
		t.Error("a sample no slower than the kept ones was built")
		return LatencySample{}
	})
	// Another receiver of publish 98, slower: it replaces the first, it
	// does not push out 97.
	w.offer(150, func() LatencySample { return LatencySample{LatencyMs: 150, Seq: 98, User: 2} })
	got = w.samples()
	if len(got) != 3 || got[0].LatencyMs != 150 || got[0].User != 2 || got[1].LatencyMs != 99 || got[2].LatencyMs != 97 {
		t.Fatalf("kept %+v, want 150 (seq 98), 99, 97", got)
	}
}

// TestWorstSameSeqBeforeFull: receivers of one slow broadcast arrive
// before the set is full; faster publishes after them are still kept.
func TestWorstSameSeqBeforeFull(t *testing.T) {
	w := newWorst(3, func(s LatencySample) int64 { return s.Seq })
	for _, x := range []struct{ us, seq int64 }{{500, 1}, {600, 1}, {10, 2}, {20, 3}, {5, 4}, {30, 5}} {
		w.offer(x.us, func() LatencySample { return LatencySample{LatencyMs: float64(x.us), Seq: x.seq} })
	}
	got := w.samples()
	if len(got) != 3 || got[0].LatencyMs != 600 || got[1].LatencyMs != 30 || got[2].LatencyMs != 20 {
		t.Fatalf("kept %+v, want 600 (seq 1), 30, 20", got)
	}
}

func TestSplitWorstMergesWorkers(t *testing.T) {
	var all []LatencySample
	for i := range 2 * worstKept { // two workers' reports, interleaved
		all = append(all, LatencySample{LatencyMs: float64(i), Seq: int64(i), Class: ClassLive},
			LatencySample{LatencyMs: float64(1000 + i), Seq: int64(1000 + i), Class: ClassReplay})
	}
	// A slow broadcast seen by both workers counts once.
	all = append(all, LatencySample{LatencyMs: 5000, Seq: 7, Class: ClassLive}, LatencySample{LatencyMs: 4999, Seq: 7, Class: ClassLive})
	live, replay := splitWorst(all)
	if len(live) != worstKept || len(replay) != worstKept {
		t.Fatalf("kept %d live and %d replayed, want %d each", len(live), len(replay), worstKept)
	}
	if live[0].LatencyMs != 5000 || live[1].LatencyMs != 2*worstKept-1 || live[worstKept-1].LatencyMs != worstKept+1 {
		t.Errorf("live %+v: want seq 7 once, then the %d next slowest", live, worstKept-1)
	}
	for _, s := range replay {
		if s.Class != ClassReplay {
			t.Errorf("a %s sample among the replayed", s.Class)
		}
	}
}

// TestRecordAttributesDeliveries: a delivery published before the session
// was ready (while the client dialled) is a replay with the dial in its
// context, not a live latency; later ones are live, and only the first of a
// session is marked first.
func TestRecordAttributesDeliveries(t *testing.T) {
	w := &worker{cfg: workerConfig{Transport: "ws", Client: ClientEpoll}}
	w.newFigures()
	u := &user{w: w, idx: 7, url: "http://127.0.0.1:1"}
	ms := int64(time.Millisecond)
	t0 := time.Now().UnixNano() - 10*int64(time.Second) // deliveries happen "now"
	// A resume: the first attempt at t0 failed; the second began at
	// t0+3 s (after a SYN retry, say) and was ready 20 ms later.
	u.times = sessionTimes{firstAttempt: t0, attempt: t0 + 3000*ms, ready: t0 + 3020*ms, attempts: 2, resumed: true}
	u.first = true
	u.pos = Position{User: 4, Tenant: 1}

	// Published 1 s into the dial, delivered by the resume's catch-up.
	u.Notification(&Delivery{Sent: t0 + 1000*ms, Seq: 1, User: 7, Position: Position{User: 5, Tenant: 1}})
	// Published after ready.
	u.Notification(&Delivery{Sent: t0 + 3030*ms, Seq: 2, User: 7, Position: Position{User: 6, Tenant: 1}})
	// Published after ready but before the one above: slower.
	u.Notification(&Delivery{Sent: t0 + 3025*ms, Seq: 3, Broadcast: true, User: -1, Position: Position{User: 6, Tenant: 2}})

	if got := u.replayed.Load(); got != 1 {
		t.Errorf("replayed %d, want 1", got)
	}
	if n := w.lat.merged().TotalCount(); n != 3-1 {
		t.Errorf("live histogram has %d samples, want 2", n)
	}
	if n := w.replayLat.merged().TotalCount(); n != 1 {
		t.Errorf("replay histogram has %d samples, want 1", n)
	}
	live, replay := splitWorst(append(w.worstLive.samples(), w.worstReplay.samples()...))
	if len(replay) != 1 || len(live) != 2 {
		t.Fatalf("kept %d replayed and %d live samples, want 1 and 2", len(replay), len(live))
	}
	r := replay[0]
	if r.Class != ClassReplay || !r.First || !r.Resumed || r.User != 7 || r.URL != u.url || r.Transport != "ws/epoll" ||
		r.Position != "5.1" || r.DialAttempts != 2 || r.DialMs != 20 || r.PublishedBeforeReadyMs != 2020 {
		t.Errorf("replayed sample %+v", r)
	}
	for _, s := range live {
		if s.Class != ClassLive || s.First || s.PublishedBeforeReadyMs >= 0 {
			t.Errorf("live sample %+v: want live, not first, published after ready", s)
		}
	}
	if !live[0].Broadcast && live[1].Broadcast {
		t.Errorf("live samples not slowest first: %+v", live)
	}
}
