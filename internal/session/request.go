package session

import (
	"slices"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/topic"
)

// Name is a client request. The request set is the same on every live
// transport: a WebSocket message's "type" and a Socket.IO event's name are
// the wire names below.
type Name uint8

// Requests. Keep in sync with docs/protocol.md.
const (
	NameNone           Name = iota
	NameAuth                // authenticate (first) or refresh the token in band
	NameList                // a page of the inbox
	NameMarkRead            // mark ids read
	NameMarkAllRead         // mark everything read
	NameDelete              // delete one notification
	NameUnreadCount         // the unread count
	NamePing                // liveness at the protocol level
	NameSeen                // mark the inbox seen (up to a position)
	NameArchive             // archive ids, or all
	NameUnarchive           // unarchive ids, or all
	NamePreferences         // the user's preferences
	NameSetPreferences      // replace the user's preferences
	NameSubscribe           // join topics (live events)
	NameUnsubscribe         // leave topics
	nameCount
)

// field is one argument a request may carry (a bit set).
type field uint16

const (
	fToken field = 1 << iota
	fSince
	fID
	fIDs
	fBefore
	fLimit
	fUnread
	fPosition
	fAll
	fCategory
	fArchived
	fMutedCategories
	fMutedTypes
	fTopics
)

var fieldNames = []struct {
	f    field
	name string
}{{fToken, "token"}, {fSince, "since"}, {fID, "id"}, {fIDs, "ids"}, {fBefore, "before"}, {fLimit, "limit"}, {fUnread, "unread"},
	{fPosition, "position"}, {fAll, "all"}, {fCategory, "category"}, {fArchived, "archived"},
	{fMutedCategories, "muted_categories"}, {fMutedTypes, "muted_types"}, {fTopics, "topics"}}

type nameInfo struct {
	wire   string
	fields field // the arguments it accepts
}

var nameTable = [nameCount]nameInfo{
	NameNone:           {"", 0},
	NameAuth:           {"auth", fToken | fSince},
	NameList:           {"notification:list", fBefore | fLimit | fUnread | fCategory | fArchived},
	NameMarkRead:       {"notification:mark-read", fID | fIDs},
	NameMarkAllRead:    {"notification:mark-all-read", 0},
	NameDelete:         {"notification:delete", fID},
	NameUnreadCount:    {"notification:unread-count", 0},
	NamePing:           {"ping", 0},
	NameSeen:           {"notification:seen", fPosition},
	NameArchive:        {"notification:archive", fID | fIDs | fAll},
	NameUnarchive:      {"notification:unarchive", fID | fIDs | fAll},
	NamePreferences:    {"preferences:get", 0},
	NameSetPreferences: {"preferences:set", fMutedCategories | fMutedTypes},
	NameSubscribe:      {"subscribe", fTopics},
	NameUnsubscribe:    {"unsubscribe", fTopics},
}

// String is the wire name.
func (n Name) String() string {
	if n >= nameCount {
		return "unknown"
	}
	return nameTable[n].wire
}

// Names lists every request, for documentation, metrics and tests.
func Names() []Name {
	out := make([]Name, 0, nameCount-1)
	for n := NameAuth; n < nameCount; n++ {
		out = append(out, n)
	}
	return out
}

// Lookup finds a request by its wire name.
func Lookup(wire string) (Name, bool) {
	for n := NameAuth; n < nameCount; n++ {
		if nameTable[n].wire == wire {
			return n, true
		}
	}
	return NameNone, false
}

// Limits on requests (the same on every transport).
const (
	MaxIDs      = 100     // ids per mark-read
	MaxTokenLen = 8 << 10 // bytes of a JWT
	MaxRefLen   = 64      // bytes of a WebSocket ref
	// MaxTopicsPerRequest bounds the topics of one subscribe, unsubscribe
	// or SSE ?topics= list.
	MaxTopicsPerRequest = 100
)

// Args are a request's arguments as they arrive on the wire (a WebSocket
// message's fields, a Socket.IO event's argument object). A nil field was
// absent.
type Args struct {
	Token  *string  `json:"token"`
	Since  *string  `json:"since"`
	ID     *string  `json:"id"`
	IDs    []string `json:"ids"`
	Before *string  `json:"before"`
	Limit  *int     `json:"limit"`
	Unread *bool    `json:"unread"`
	// Inbox model (issue 15).
	Position        *string  `json:"position"`
	All             *bool    `json:"all"`
	Category        *string  `json:"category"`
	Archived        *bool    `json:"archived"`
	MutedCategories []string `json:"muted_categories"`
	MutedTypes      []string `json:"muted_types"`
	Topics          []string `json:"topics"`
}

func (a *Args) present() field {
	var f field
	set := func(b bool, x field) {
		if b {
			f |= x
		}
	}
	set(a.Token != nil, fToken)
	set(a.Since != nil, fSince)
	set(a.ID != nil, fID)
	set(a.IDs != nil, fIDs)
	set(a.Before != nil, fBefore)
	set(a.Limit != nil, fLimit)
	set(a.Unread != nil, fUnread)
	set(a.Position != nil, fPosition)
	set(a.All != nil, fAll)
	set(a.Category != nil, fCategory)
	set(a.Archived != nil, fArchived)
	set(a.MutedCategories != nil, fMutedCategories)
	set(a.MutedTypes != nil, fMutedTypes)
	set(a.Topics != nil, fTopics)
	return f
}

// Ref is how a reply finds its request: the WebSocket protocol echoes a
// JSON ref, Socket.IO answers an ack id. A transport sets the one it uses.
type Ref struct {
	JSON []byte // WebSocket: the raw "ref" value; nil when absent
	Ack  int64  // Socket.IO: the ack id; NoAck when absent
}

// NoAck is Ref.Ack when the client asked for no acknowledgement.
const NoAck = -1

// Request is a validated client request.
type Request struct {
	Name  Name
	Ref   Ref
	Token string                 // auth
	Since *notification.Position // auth: resume after this position
	IDs   []string               // mark-read, archive, unarchive
	ID    string                 // delete
	Query store.ListQuery        // list
	// seen: up to this position (nil: everything).
	Position *notification.Position
	All      bool                     // archive, unarchive: everything
	Prefs    notification.Preferences // set-preferences
	Topics   []string                 // subscribe, unsubscribe: valid names, no duplicates
}

// Parse validates a request's arguments. Errors wrap ErrInvalid; the
// returned Request carries ref even then, for the error reply.
func Parse(wire string, a *Args, ref Ref) (Request, error) {
	req := Request{Ref: ref}
	if wire == "" {
		return req, invalid("type missing")
	}
	n, ok := Lookup(wire)
	if !ok {
		return req, invalid("unknown type")
	}
	req.Name = n
	if a == nil {
		a = &Args{}
	}
	if extra := a.present() &^ nameTable[n].fields; extra != 0 {
		for _, fn := range fieldNames {
			if extra&fn.f != 0 {
				return req, invalid("field %q not allowed in %q", fn.name, wire)
			}
		}
	}
	return req, req.fill(a)
}

func (req *Request) fill(a *Args) error {
	switch req.Name {
	case NameAuth:
		if a.Token == nil || *a.Token == "" || len(*a.Token) > MaxTokenLen {
			return invalid("auth: token missing or too long")
		}
		req.Token = *a.Token
		if a.Since != nil {
			p, err := notification.ParsePosition(*a.Since)
			if err != nil {
				return invalid("auth: since: %v", err)
			}
			req.Since = &p
		}
	case NameMarkRead:
		req.IDs = a.IDs
		if a.ID != nil {
			req.IDs = append(req.IDs, *a.ID)
		}
		if len(req.IDs) == 0 || len(req.IDs) > MaxIDs {
			return invalid("mark-read: 1..%d ids required", MaxIDs)
		}
		for _, id := range req.IDs {
			if !notification.ValidID(id) {
				return invalid("mark-read: malformed id")
			}
		}
	case NameDelete:
		if a.ID == nil || !notification.ValidID(*a.ID) {
			return invalid("delete: malformed id")
		}
		req.ID = *a.ID
	case NameList:
		return req.fillList(a)
	case NameSeen:
		if a.Position != nil {
			p, err := notification.ParsePosition(*a.Position)
			if err != nil || *a.Position == "" {
				return invalid("seen: malformed position")
			}
			req.Position = &p
		}
	case NameArchive, NameUnarchive:
		return req.fillArchive(a)
	case NameSetPreferences:
		req.Prefs = notification.Preferences{MutedCategories: a.MutedCategories, MutedTypes: a.MutedTypes}
		if err := notification.ValidatePreferences(req.Prefs); err != nil {
			return invalid("set-preferences: %v", err)
		}
	case NameSubscribe, NameUnsubscribe:
		topics, err := ParseTopics(a.Topics)
		if err != nil {
			return invalid("%s: %v", req.Name, err)
		}
		req.Topics = topics
	}
	return nil
}

// fillArchive reads the ids, or all, of an archive or unarchive request.
func (req *Request) fillArchive(a *Args) error {
	req.All = a.All != nil && *a.All
	req.IDs = a.IDs
	if a.ID != nil {
		req.IDs = append(req.IDs, *a.ID)
	}
	switch {
	case req.All && len(req.IDs) > 0:
		return invalid("%s: ids and all are exclusive", req.Name)
	case req.All:
		return nil
	case len(req.IDs) == 0 || len(req.IDs) > MaxIDs:
		return invalid("%s: 1..%d ids or all required", req.Name, MaxIDs)
	}
	for _, id := range req.IDs {
		if !notification.ValidID(id) {
			return invalid("%s: malformed id", req.Name)
		}
	}
	return nil
}

// ParseTopics checks a list of topic names (a subscribe's, an SSE
// ?topics= list): 1 to MaxTopicsPerRequest valid names. Duplicates are
// dropped. Errors wrap ErrInvalid.
func ParseTopics(list []string) ([]string, error) {
	if len(list) == 0 || len(list) > MaxTopicsPerRequest {
		return nil, invalid("topics: 1..%d names required", MaxTopicsPerRequest)
	}
	out := make([]string, 0, len(list))
	for _, t := range list {
		if !topic.Valid(t) {
			return nil, invalid("topics: malformed name (want [A-Za-z0-9._:-]{1,%d})", topic.MaxNameLen)
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

func (req *Request) fillList(a *Args) error {
	if a.Before != nil {
		if !notification.ValidID(*a.Before) {
			return invalid("list: malformed before")
		}
		req.Query.Before = *a.Before
	}
	if a.Limit != nil {
		if *a.Limit < 0 {
			return invalid("list: negative limit")
		}
		req.Query.Limit = min(*a.Limit, store.MaxListLimit)
	}
	req.Query.UnreadOnly = a.Unread != nil && *a.Unread
	req.Query.Archived = a.Archived != nil && *a.Archived
	if a.Category != nil {
		if !notification.ValidCategory(*a.Category) {
			return invalid("list: malformed category")
		}
		req.Query.Category = *a.Category
	}
	return nil
}

// ValidRef accepts a WebSocket ref: a short string or number.
func ValidRef(ref []byte) error {
	if len(ref) == 0 {
		return nil
	}
	if len(ref) > MaxRefLen {
		return invalid("ref too long")
	}
	switch c := ref[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return nil
	}
	return invalid("ref must be a string or number")
}
