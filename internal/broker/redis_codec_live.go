package broker

import (
	"fmt"

	"github.com/heraldhq/herald/internal/notification"
)

// Wire format of a live (ephemeral) event, kept apart from msgEvent so that
// the stored-notification format does not grow fields it never uses:
//
//	live (msgLive, version 1):
//	  tenant str | id str | audience kind u8 | users (uvarint n, n×str) |
//	  role str | topics (uvarint n, n×str) | type str | title str | body str |
//	  data bytes | createdAt time
//
// Every live event of a tenant goes through the tenant's partition, so a
// tenant's live events keep their publish order on every node. The type
// byte is apart from msgEvent's version bytes (1, 2, …) and msgProbe.
const msgLive byte = 0x4c // 'L'

func encodeLive(l *notification.Live) []byte {
	b := make([]byte, 0, 128+len(l.Data)+len(l.Body))
	b = append(b, msgLive)
	b = appendStr(b, l.Tenant)
	b = appendStr(b, l.ID)
	b = append(b, byte(l.Audience.Kind))
	b = appendStrs(b, l.Audience.Users)
	b = appendStr(b, l.Audience.Role)
	b = appendStrs(b, l.Topics)
	b = appendStr(b, l.Type)
	b = appendStr(b, l.Title)
	b = appendStr(b, l.Body)
	b = appendBytes(b, l.Data)
	return appendTime(b, l.CreatedAt)
}

// decodeLive decodes a msgLive message into an EventLive event.
func decodeLive(msg string) (*notification.Event, error) {
	r := reader{s: msg}
	if r.byte() != msgLive {
		return nil, fmt.Errorf("%w: not a live event", errCodec)
	}
	l := &notification.Live{}
	l.Tenant = r.str()
	l.ID = r.str()
	l.Audience.Kind = notification.AudienceKind(r.byte())
	l.Audience.Users = r.strs()
	l.Audience.Role = r.str()
	l.Topics = r.strs()
	l.Type = r.str()
	l.Title = r.str()
	l.Body = r.str()
	l.Data = r.bytes()
	l.CreatedAt = r.time()
	if r.err != nil {
		return nil, r.err
	}
	if len(r.s) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errCodec, len(r.s))
	}
	return &notification.Event{Kind: notification.EventLive, Tenant: l.Tenant, Live: l}, nil
}
