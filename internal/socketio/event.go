package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/heraldhq/herald/internal/notification"
)

// Client → server event names.
const (
	evMarkRead    = "notification:mark-read"
	evMarkAllRead = "notification:mark-all-read"
	evDelete      = "notification:delete"
	evList        = "notification:list"
	evAuth        = "auth" // in-band token refresh
)

// Limits on client events (the same as the WebSocket protocol's).
const (
	maxIDs       = 100
	maxTokenLen  = 8 << 10
	maxJSONDepth = 4 // inside the event's argument
)

// errInvalid is the one error clients see for any malformed event; the
// wrapped detail goes to the server log only.
var errInvalid = errors.New("invalid event")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errInvalid}, args...)...)
}

// clientEvent is a validated client event.
type clientEvent struct {
	Name   string
	IDs    []string // mark-read
	ID     string   // delete
	Before string   // list
	Limit  int      // list
	Unread bool     // list
	Token  string   // auth
}

// eventArg is the argument object of every client event; which fields are
// allowed depends on the event.
type eventArg struct {
	ID     *string  `json:"id"`
	IDs    []string `json:"ids"`
	Before *string  `json:"before"`
	Limit  *int     `json:"limit"`
	Unread *bool    `json:"unread"`
	Token  *string  `json:"token"`
}

// decodeEvent validates the payload of an EVENT packet: ["name"] or
// ["name", {…}] (the acknowledgement callback is not part of the payload).
func decodeEvent(data json.RawMessage) (clientEvent, error) {
	var ev clientEvent
	if d := notification.JSONDepth(data, maxJSONDepth+1); d > maxJSONDepth+1 {
		return ev, invalid("nesting depth %d over %d", d, maxJSONDepth+1)
	}
	var args []json.RawMessage
	if err := json.Unmarshal(data, &args); err != nil {
		return ev, invalid("payload: %v", err)
	}
	if len(args) == 0 || len(args) > 2 {
		return ev, invalid("%d arguments", len(args))
	}
	if err := json.Unmarshal(args[0], &ev.Name); err != nil {
		return ev, invalid("event name is not a string")
	}
	var a eventArg
	present := map[string]bool{}
	if len(args) == 2 && !bytes.Equal(bytes.TrimSpace(args[1]), []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(args[1]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			return ev, invalid("%s: argument: %v", ev.Name, err)
		}
		present = map[string]bool{"id": a.ID != nil, "ids": a.IDs != nil, "before": a.Before != nil,
			"limit": a.Limit != nil, "unread": a.Unread != nil, "token": a.Token != nil}
	}
	allowed := func(fields ...string) error {
		set := map[string]bool{}
		for _, f := range fields {
			set[f] = true
		}
		for f, ok := range present {
			if ok && !set[f] {
				return invalid("field %q not allowed in %q", f, ev.Name)
			}
		}
		return nil
	}
	switch ev.Name {
	case evMarkRead:
		if err := allowed("id", "ids"); err != nil {
			return ev, err
		}
		ev.IDs = a.IDs
		if a.ID != nil {
			ev.IDs = append(ev.IDs, *a.ID)
		}
		if len(ev.IDs) == 0 || len(ev.IDs) > maxIDs {
			return ev, invalid("mark-read: 1..%d ids required", maxIDs)
		}
		for _, id := range ev.IDs {
			if !notification.ValidID(id) {
				return ev, invalid("mark-read: malformed id")
			}
		}
	case evDelete:
		if err := allowed("id"); err != nil {
			return ev, err
		}
		if a.ID == nil || !notification.ValidID(*a.ID) {
			return ev, invalid("delete: malformed id")
		}
		ev.ID = *a.ID
	case evMarkAllRead:
		if err := allowed(); err != nil {
			return ev, err
		}
	case evList:
		if err := allowed("before", "limit", "unread"); err != nil {
			return ev, err
		}
		if a.Before != nil {
			if !notification.ValidID(*a.Before) {
				return ev, invalid("list: malformed before")
			}
			ev.Before = *a.Before
		}
		if a.Limit != nil {
			if *a.Limit < 0 {
				return ev, invalid("list: negative limit")
			}
			ev.Limit = *a.Limit
		}
		ev.Unread = a.Unread != nil && *a.Unread
	case evAuth:
		if err := allowed("token"); err != nil {
			return ev, err
		}
		if a.Token == nil || *a.Token == "" || len(*a.Token) > maxTokenLen {
			return ev, invalid("auth: token missing or too long")
		}
		ev.Token = *a.Token
	default:
		return ev, invalid("unknown event")
	}
	return ev, nil
}

// connectAuth is the auth payload of a CONNECT ({token, since}); other
// fields are ignored, as Socket.IO servers do.
type connectAuth struct {
	Token string  `json:"token"`
	Since *string `json:"since"`
}
