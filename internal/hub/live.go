package hub

import (
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

// Live events and topics. Everything here is the ephemeral path: no
// position, no cursor, no pending buffer, no unread count, no store read.
// A live event is written to the clients it concerns that are ready (their
// ready frame is sent) at the moment it arrives, or to nobody: at most once.
//
// Topic subscriptions are indexed per tenant and topic (tshards), and each
// client remembers its own topics (Client.topics) so that closing it removes
// every entry. Lock order: Client.mu, then a topic shard's mu; fan-out
// copies a topic's clients under the shard's read lock and offers the event
// after releasing it, so no path takes them the other way round.

// LiveFrame is what a transport needs to write a live event under its own
// name (Socket.IO emits Type with Data as the payload).
type LiveFrame struct {
	Type string
	Data []byte // the data object, or "null"
	Meta []byte // the event object without data
}

// wireLive is the JSON shape of a live event on every transport.
type wireLive struct {
	ID        string          `json:"id"`
	Topic     string          `json:"topic,omitempty"`
	Type      string          `json:"type"`
	Title     string          `json:"title,omitempty"`
	Body      string          `json:"body,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
}

// encodeLive builds the frame of l as seen through topic ("" for a user,
// tenant or role audience).
func encodeLive(l *notification.Live, topic string) Frame {
	w := wireLive{ID: l.ID, Topic: topic, Type: l.Type, Title: l.Title, Body: l.Body, CreatedAt: l.CreatedAt.UTC()}
	meta, _ := json.Marshal(w)
	data := []byte("null")
	if len(l.Data) > 0 {
		w.Data, data = l.Data, l.Data
	}
	payload, err := json.Marshal(w)
	if err != nil { // data is validated by the publish API; deliver without it otherwise
		payload, data = meta, []byte("null")
	}
	return Frame{Kind: FrameEvent, Payload: payload, Live: &LiveFrame{Type: l.Type, Data: data, Meta: meta}}
}

type topicKey struct{ tenant, topic string }

type topicShard struct {
	mu   sync.RWMutex
	subs map[topicKey]map[*Client]struct{} // guarded by mu
}

func (h *Hub) topicShardFor(k topicKey) *topicShard {
	return &h.tshards[h.hashPair(k.tenant, k.topic)%shardCount]
}

// ErrTooManyTopics is returned by Subscribe when the connection would hold
// more topics than its limit.
var ErrTooManyTopics = errors.New("hub: too many topics for this connection")

// Subscribe adds topics (names of the client's tenant; the caller has
// validated and authorized them) to the client's subscriptions. It is all
// or nothing: when the client would then hold more than max topics
// (max <= 0: no limit), nothing changes and ErrTooManyTopics is returned.
// Topics already held count once. ErrClosed after Close.
func (c *Client) Subscribe(topics []string, max int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateClosed {
		return ErrClosed
	}
	fresh := 0
	for i, t := range topics {
		if !slices.Contains(c.topics, t) && !slices.Contains(topics[:i], t) {
			fresh++
		}
	}
	if max > 0 && len(c.topics)+fresh > max {
		return ErrTooManyTopics
	}
	// Indexed while c.mu is held: teardown takes c.topics only after the
	// client is marked closed, so it sees every topic indexed here.
	for _, t := range topics {
		if slices.Contains(c.topics, t) {
			continue
		}
		c.topics = append(c.topics, t)
		c.hub.index(c, t)
	}
	return nil
}

// Unsubscribe removes topics from the client's subscriptions; names it does
// not hold are ignored.
func (c *Client) Unsubscribe(topics []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range topics {
		if i := slices.Index(c.topics, t); i >= 0 {
			c.topics = slices.Delete(c.topics, i, i+1)
			c.hub.unindex(c, t)
		}
	}
}

// Topics returns the client's topics (any order).
func (c *Client) Topics() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.topics)
}

// dropTopics removes every topic of a closed client from the index.
func (c *Client) dropTopics() {
	c.mu.Lock()
	topics := c.topics
	c.topics = nil
	c.mu.Unlock()
	for _, t := range topics {
		c.hub.unindex(c, t)
	}
}

func (h *Hub) index(c *Client, topic string) {
	k := topicKey{c.r.Tenant, topic}
	sh := h.topicShardFor(k)
	sh.mu.Lock()
	set := sh.subs[k]
	if set == nil {
		set = make(map[*Client]struct{})
		sh.subs[k] = set
	}
	set[c] = struct{}{}
	sh.mu.Unlock()
}

func (h *Hub) unindex(c *Client, topic string) {
	k := topicKey{c.r.Tenant, topic}
	sh := h.topicShardFor(k)
	sh.mu.Lock()
	if set := sh.subs[k]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(sh.subs, k)
		}
	}
	sh.mu.Unlock()
}

// subscribers returns a copy of the clients subscribed to a tenant's topic.
func (h *Hub) subscribers(tenant, topic string) []*Client {
	k := topicKey{tenant, topic}
	sh := h.topicShardFor(k)
	sh.mu.RLock()
	set := sh.subs[k]
	out := make([]*Client, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sh.mu.RUnlock()
	return out
}

// TopicStats reports the size of the topic index: (tenant, topic) keys and
// subscriptions (client-topic pairs). Both are 0 once every client has
// left its topics or closed.
func (h *Hub) TopicStats() (topics, subscriptions int) {
	for i := range h.tshards {
		sh := &h.tshards[i]
		sh.mu.RLock()
		topics += len(sh.subs)
		for _, set := range sh.subs {
			subscriptions += len(set)
		}
		sh.mu.RUnlock()
	}
	return topics, subscriptions
}

// deliverLive writes a live event to the ready clients it concerns.
func (h *Hub) deliverLive(l *notification.Live) {
	sent := 0
	switch {
	case l.ForTopics():
		sent = h.deliverTopics(l)
	case l.Audience.Kind == notification.AudienceUsers:
		var f Frame // encoded for the first client found: most users of a unicast are elsewhere
		for _, u := range l.Audience.Users {
			h.forUser(l.Tenant, u, func(c *Client) {
				if f.Live == nil {
					f = encodeLive(l, "")
				}
				if c.offerLive(f, "") {
					sent++
				}
			})
		}
	case l.Audience.Kind == notification.AudienceTenant, l.Audience.Kind == notification.AudienceRole:
		role := ""
		if l.Audience.Kind == notification.AudienceRole {
			role = l.Audience.Role
		}
		h.tmu.RLock()
		set := h.tenants[l.Tenant]
		clients := make([]*Client, 0, len(set))
		for c := range set {
			clients = append(clients, c)
		}
		h.tmu.RUnlock()
		if len(clients) > 0 {
			f := encodeLive(l, "")
			sent = fanOut(clients, func(c *Client) bool { return c.offerLive(f, role) })
		}
	}
	if fn := h.cfg.Observer.Delivered; fn != nil {
		fn(FrameEvent, sent, time.Time{})
	}
}

// deliverTopics writes l to the subscribers of its topics, once per
// client: a client subscribed to several of them gets the frame of the
// first (in the event's order) it holds.
func (h *Hub) deliverTopics(l *notification.Live) int {
	if len(l.Topics) == 1 {
		clients := h.subscribers(l.Tenant, l.Topics[0])
		if len(clients) == 0 { // the common case on a node without subscribers: nothing to encode
			return 0
		}
		f := encodeLive(l, l.Topics[0])
		return fanOut(clients, func(c *Client) bool { return c.offerLive(f, "") })
	}
	seen := make(map[*Client]struct{})
	sent := 0
	for _, t := range l.Topics {
		clients := h.subscribers(l.Tenant, t)
		n := 0
		for _, c := range clients {
			if _, dup := seen[c]; !dup {
				seen[c] = struct{}{}
				clients[n] = c
				n++
			}
		}
		if n == 0 {
			continue
		}
		f := encodeLive(l, t)
		sent += fanOut(clients[:n], func(c *Client) bool { return c.offerLive(f, "") })
	}
	return sent
}

// offerLive writes a live event's frame if the client is ready (its ready
// frame went out) and, for a role audience, has that role. It never
// buffers: a client that is not ready, or closed, misses the event.
func (c *Client) offerLive(f Frame, role string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateClosed || !c.ready {
		return false
	}
	if role != "" && c.r.Role != role {
		return false
	}
	if c.expiredLocked(time.Now()) {
		c.closeAsyncLocked(ReasonTokenExpired)
		return false
	}
	return c.sendLocked(f)
}
