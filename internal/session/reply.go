package session

import (
	"encoding/json"
	"strconv"

	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
)

// Reply answers one request. Transports encode it onto their wire: the
// fields (AppendFields) are the same everywhere, only the envelope differs.
type Reply struct {
	Name   Name                      // the request answered
	Ref    Ref                       // copied from the request
	Err    *Error                    // nil on success
	Page   *store.Page               // NameList
	Counts store.Counts              // NameUnreadCount
	Prefs  *notification.Preferences // NamePreferences, NameSetPreferences
	Change store.Change              // state changes (the HTTP API shows it)
}

// HasResult reports whether a successful reply carries fields beyond the
// acknowledgement (a page, the counts, preferences).
func (r *Reply) HasResult() bool {
	return r.Err == nil && (r.Name == NameList || r.Name == NameUnreadCount || r.Name == NamePreferences || r.Name == NameSetPreferences)
}

// AppendFields appends the reply's fields, each preceded by a comma, to b:
// `,"notifications":[…],"next":…` for a page, `,"count":N` for a count, and
// `,"code":…,"message":…,"correlation_id":…` for an error. An acknowledgement
// has none.
func (r *Reply) AppendFields(b []byte) []byte {
	switch {
	case r.Err != nil:
		return AppendError(b, r.Err)
	case r.Name == NameList && r.Page != nil:
		return AppendPage(b, r.Page)
	case r.Name == NameUnreadCount:
		return AppendCounts(b, r.Counts)
	case r.Prefs != nil:
		return AppendPreferences(b, *r.Prefs)
	}
	return b
}

// AppendCounts appends `,"count":N,"unseen":M,"by_category":{…}`.
func AppendCounts(b []byte, c store.Counts) []byte {
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, c.Unread, 10)
	b = append(b, `,"unseen":`...)
	b = strconv.AppendInt(b, c.Unseen, 10)
	by := c.ByCategory
	if by == nil {
		by = map[string]int64{}
	}
	cats, _ := json.Marshal(by)
	b = append(b, `,"by_category":`...)
	return append(b, cats...)
}

// AppendPreferences appends `,"muted_categories":[…],"muted_types":[…]`.
func AppendPreferences(b []byte, p notification.Preferences) []byte {
	list := func(ss []string) []byte {
		if ss == nil {
			ss = []string{}
		}
		out, _ := json.Marshal(ss)
		return out
	}
	b = append(b, `,"muted_categories":`...)
	b = append(b, list(p.MutedCategories)...)
	b = append(b, `,"muted_types":`...)
	return append(b, list(p.MutedTypes)...)
}

// AppendObject appends the reply's fields as one JSON object (`{}` for an
// acknowledgement).
func (r *Reply) AppendObject(b []byte) []byte {
	start := len(b)
	b = r.AppendFields(append(b, '{'))
	if len(b) > start+1 {
		b = append(b[:start+1], b[start+2:]...) // drop the first field's comma
	}
	return append(b, '}')
}

// AppendPage appends `,"notifications":[…],"next":…`, encoded as the live
// frames encode notifications.
func AppendPage(b []byte, p *store.Page) []byte {
	b = append(b, `,"notifications":[`...)
	for i := range p.Items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, hub.EncodeItem(&p.Items[i].Notification, p.Items[i].Read, p.Items[i].Archived)...)
		b = append(b, '}')
	}
	b = append(b, `],"next":`...)
	if p.Next == "" {
		return append(b, "null"...)
	}
	return appendString(b, p.Next)
}

// AppendError appends `,"code":…,"message":…,"correlation_id":…`.
func AppendError(b []byte, e *Error) []byte {
	b = append(b, `,"code":`...)
	b = appendString(b, e.Code.String())
	b = append(b, `,"message":`...)
	b = appendString(b, e.text())
	if e.CorrelationID != "" {
		b = append(b, `,"correlation_id":`...)
		b = appendString(b, e.CorrelationID)
	}
	return b
}

// appendString appends s as a JSON string: printable ASCII (every code,
// message, id and cursor Herald writes) directly, anything else through
// encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
