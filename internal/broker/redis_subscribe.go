package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/audit"
)

// The subscription runs in sessions. A session is one go-redis PubSub: it
// subscribes to every partition channel and the probe channel, waits for
// Redis to confirm all of them, calls OnResubscribe, then reads and
// dispatches messages until the connection fails or falls silent (no message,
// not even this node's own probe, for ProbeInterval+ProbeTimeout). Then the
// session is closed and, after a jittered exponential backoff, a new one
// starts.
//
// go-redis's PubSub reconnects by itself inside Receive (it redials and
// re-sends SUBSCRIBE when a read fails), but it does so silently, without
// backoff, and never for a half-open connection that just stops delivering.
// Owning the sessions makes every loss visible: the subscription is marked
// down at once (Healthy fails, Publish fails fast), and OnResubscribe fires
// exactly when a new subscription is confirmed, so that the catch-up from the
// store starts after any event it might have missed was committed.

// subscribeLoop runs sessions until Close.
func (r *Redis) subscribeLoop() {
	defer r.wg.Done()
	attempt := 0
	first := true
	for {
		confirmed, err := r.session(&first)
		if r.ctx.Err() != nil {
			return
		}
		r.setDown(err)
		if confirmed {
			attempt = 0
		}
		d := backoff(attempt, r.cfg.ReconnectMin, r.cfg.ReconnectMax)
		attempt++
		t := time.NewTimer(d)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// backoff is min·2^attempt capped at max, with equal jitter: a random
// duration in [d/2, d], so that nodes do not reconnect in lockstep.
func backoff(attempt int, min, max time.Duration) time.Duration {
	d := max
	if attempt < 30 {
		if x := min << attempt; x > 0 && x < max {
			d = x
		}
	}
	return d/2 + rand.N(d/2+1)
}

// session runs one subscription; it returns why it ended and whether it was
// confirmed first. first is true until the first confirmation.
func (r *Redis) session(first *bool) (confirmed bool, err error) {
	ps := r.client.Subscribe(r.ctx) // no channels yet: no I/O
	r.mu.Lock()
	if r.closed.Load() {
		r.mu.Unlock()
		_ = ps.Close()
		return false, ErrClosed
	}
	r.ps = ps
	r.killErr = nil
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		if r.ps == ps {
			r.ps = nil
		}
		r.mu.Unlock()
		_ = ps.Close()
	}()

	all := make([]string, 0, r.subCount)
	all = append(all, r.channels...)
	all = append(all, r.probeChan)
	sctx, cancel := context.WithTimeout(r.ctx, r.cfg.ProbeTimeout)
	if r.cfg.Sharded {
		err = ps.SSubscribe(sctx, all...)
	} else {
		err = ps.Subscribe(sctx, all...)
	}
	cancel()
	if err != nil {
		return false, fmt.Errorf("subscribe: %w", err)
	}

	// Probes arrive every ProbeInterval while the path works; silence
	// longer than this means a dead (possibly half-open) connection.
	silence := r.cfg.ProbeInterval + r.cfg.ProbeTimeout
	for {
		msg, err := ps.ReceiveTimeout(r.ctx, silence)
		if err != nil {
			r.mu.Lock()
			kill := r.killErr
			r.mu.Unlock()
			if kill != nil {
				return confirmed, kill
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return confirmed, fmt.Errorf("no message for %s: %w", silence, err)
			}
			return confirmed, err
		}
		switch m := msg.(type) {
		case *redis.Message:
			r.dispatch(m)
		case *redis.Subscription:
			if !confirmed && (m.Kind == "subscribe" || m.Kind == "ssubscribe") && m.Count >= r.subCount {
				confirmed = true
				r.setUp(*first)
				*first = false
			}
		}
	}
}

// setUp marks the subscription confirmed and asks clients to catch up.
func (r *Redis) setUp(first bool) {
	// Probes sent before this session say nothing about it.
	r.pmu.Lock()
	r.probeAcked = r.probeSent
	r.pmu.Unlock()
	r.probeLate.Store(false)
	// The catch-up is requested before the node reports healthy again.
	if f := r.cfg.OnResubscribe; f != nil {
		f()
	}
	if !first {
		r.resubscribes.Add(1)
	}
	r.mu.Lock()
	since, why := r.downSince, r.downErr
	r.downErr = nil
	r.subscribed.Store(true)
	r.mu.Unlock()
	if first {
		r.log.Info("redis broker subscribed", "partitions", r.cfg.Partitions, "sharded", r.cfg.Sharded)
		close(r.ready) // NewRedis returns after the first OnResubscribe
	} else {
		r.record(slog.LevelInfo, audit.BrokerUp, "redis subscription restored; catching clients up from the store",
			"downtime", time.Since(since).Round(time.Millisecond).String(), "cause", errString(why))
	}
	select {
	case r.probe <- struct{}{}:
	default:
	}
}

// setDown marks the subscription lost.
func (r *Redis) setDown(err error) {
	r.mu.Lock()
	wasUp := r.subscribed.Swap(false)
	if wasUp {
		r.downSince = time.Now()
	}
	r.downErr = err
	r.mu.Unlock()
	if wasUp {
		r.record(slog.LevelWarn, audit.BrokerDown, "redis subscription lost; live fan-out paused until it is back", "err", errString(err))
	} else {
		r.log.Debug("redis subscribe attempt failed", "err", errString(err))
	}
}

// record records an audit event with the attributes of r.log ("component"
// and "node"), which the Recorder's logger does not carry.
func (r *Redis) record(level slog.Level, ev audit.Event, msg string, attrs ...any) {
	r.cfg.Audit.Record(context.Background(), level, ev, msg,
		append([]any{"component", "broker", "node", r.cfg.NodeID}, attrs...)...)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// dispatch handles one message on the subscriber goroutine.
func (r *Redis) dispatch(m *redis.Message) {
	p := m.Payload
	if p == "" {
		r.decodeError(m.Channel, errCodec)
		return
	}
	switch p[0] {
	case msgEvent:
		ev, err := decodeEvent(p)
		if err != nil {
			r.decodeError(m.Channel, err)
			return
		}
		r.received.Add(1)
		r.queueDelivery(ev)
	case msgLive:
		ev, err := decodeLive(p)
		if err != nil {
			r.decodeError(m.Channel, err)
			return
		}
		r.received.Add(1)
		r.queueDelivery(ev)
	case msgProbe:
		if m.Channel != r.probeChan {
			return
		}
		seq, err := decodeProbe(p)
		if err != nil {
			r.decodeError(m.Channel, err)
			return
		}
		r.ackProbe(seq)
	case msgKick:
		r.kicks.Add(1)
		r.record(slog.LevelInfo, audit.BrokerKick, "a node could not publish some events; catching clients up from the store")
		if f := r.cfg.OnResubscribe; f != nil {
			f()
		}
	default:
		r.decodeError(m.Channel, fmt.Errorf("%w: unknown type %#x", errCodec, p[0]))
	}
}

func (r *Redis) decodeError(channel string, err error) {
	n := r.decodeErrs.Add(1)
	if n == 1 || n%1000 == 0 {
		r.log.Warn("undecodable broker message dropped (a node of another version?)", "channel", channel, "err", err, "count", n)
	}
}

// probeLoop publishes a probe to this node's channel every ProbeInterval
// (and at once after a resubscription), and the kick that makes every node
// catch up after this node failed to publish.
func (r *Redis) probeLoop() {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		case <-r.probe:
		}
		if !r.subscribed.Load() {
			r.probeLate.Store(r.probeOverdue() != nil)
			continue // Healthy already fails; probes would only fail too
		}
		if err := r.probeOverdue(); err != nil {
			// The subscription may be dead without an error (half-open
			// connection, partition) and events lost: start a new session,
			// whose confirmation catches clients up.
			r.probeLate.Store(true)
			r.endSession(err)
			continue
		}
		r.probeLate.Store(false)
		r.sendKick()
		r.sendProbe()
	}
}

func (r *Redis) sendProbe() {
	r.pmu.Lock()
	r.probeSent++
	seq := r.probeSent
	r.probeAt[seq%probeRing] = time.Now()
	r.probeOK[seq%probeRing] = false // until Redis accepts it
	r.pmu.Unlock()
	ctx, cancel := context.WithTimeout(r.ctx, min(r.cfg.PublishTimeout, r.cfg.ProbeTimeout))
	err := r.publish(ctx, r.client, r.probeChan, encodeProbe(seq)).Err()
	cancel()
	r.pmu.Lock()
	r.probeErr = err
	r.probeOK[seq%probeRing] = err == nil
	r.pmu.Unlock()
}

// endSession closes the current subscription so that the subscriber starts
// a new one; err is the reason it reports.
func (r *Redis) endSession(err error) {
	r.mu.Lock()
	ps := r.ps
	if ps != nil && r.killErr == nil {
		r.killErr = err
	}
	r.mu.Unlock()
	if ps != nil {
		_ = ps.Close()
	}
}

// ackProbe records a probe back. A probe that Redis accepted but that never
// came back while a later one did means the subscription dropped messages
// without failing: the session is replaced, as when a probe is overdue.
func (r *Redis) ackProbe(seq uint64) {
	now := time.Now()
	r.pmu.Lock()
	if seq <= r.probeAcked || seq > r.probeSent {
		r.pmu.Unlock()
		return
	}
	lost := uint64(0)
	for s := r.probeAcked + 1; s < seq && seq-s < probeRing; s++ {
		if r.probeOK[s%probeRing] {
			lost = s
		}
	}
	r.probeAcked = seq
	if r.probeSent-seq < probeRing {
		r.rtt.Store(int64(now.Sub(r.probeAt[seq%probeRing])))
	}
	r.pmu.Unlock()
	if lost != 0 {
		r.record(slog.LevelWarn, audit.BrokerProbeLost, "a probe was lost on a live subscription; resubscribing", "probe", lost)
		r.endSession(fmt.Errorf("probe %d lost while probe %d came back", lost, seq))
	}
}

// ReportLost tells every node (this one too) to catch its clients up from
// the store: a committed event may have missed the live path outside the
// broker (a publish whose COMMIT answer was lost). The kick goes out with
// the next probe, at once when the subscription is up, else once it is
// back (whose resubscription catches clients up anyway).
func (r *Redis) ReportLost() {
	r.failSeq.Add(1)
	select {
	case r.probe <- struct{}{}:
	default:
	}
}

// sendKick tells every node (this one too) to catch its clients up from the
// store when a publish failed since the last kick: the failed event was
// committed, and nodes that stayed subscribed would otherwise not deliver it
// until the stream's next event.
func (r *Redis) sendKick() {
	f := r.failSeq.Load()
	if f == r.kickedSeq.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.PublishTimeout)
	defer cancel()
	if err := r.publish(ctx, r.client, r.channels[0], []byte{msgKick}).Err(); err != nil {
		return
	}
	r.kickedSeq.Store(f)
	r.record(slog.LevelInfo, audit.BrokerKickSent, "publishes failed; told every node to catch its clients up")
}
