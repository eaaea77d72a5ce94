package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/heraldhq/herald/internal/session"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
)

// Limits of a publish request's shape. The values themselves (identifiers,
// type, title, body) follow the rule set of internal/notification, which
// the store applies again.
const (
	maxUsersPerItem   = 1000
	maxIdempotencyKey = 255
	maxDataDepth      = 16
)

// publishItem is the JSON body of one notification to publish.
type publishItem struct {
	Tenant    string          `json:"tenant"`
	To        *audienceJSON   `json:"to"`
	Type      string          `json:"type"`
	Title     string          `json:"title"`
	Body      string          `json:"body"`
	Data      json.RawMessage `json:"data"`
	ExpiresAt *time.Time      `json:"expires_at"`
	// Ephemeral: true makes the item a live event (live.go), never stored.
	Ephemeral *bool `json:"ephemeral"`
	// Inbox model (issue 15).
	Category    *string       `json:"category"`
	CollapseKey *string       `json:"collapse_key"`
	Fallback    *fallbackJSON `json:"fallback"`
	// dataChecked: Data is checkData's result already (the fast decoder
	// compacts it as it copies it).
	dataChecked bool
}

// fallbackJSON asks for a notification.unseen webhook per recipient who
// has not read the notification after_s seconds after it is stored.
type fallbackJSON struct {
	AfterS *int64 `json:"after_s"`
}

type audienceJSON struct {
	Users  []string `json:"users"`
	Tenant *bool    `json:"tenant"`
	Role   *string  `json:"role"`
	Topics []string `json:"topics"` // live events only
}

type batchBody struct {
	Notifications []json.RawMessage `json:"notifications"`
}

// errBadRequest wraps every validation failure; the detail is logged only.
var errBadRequest = errors.New("invalid request")

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errBadRequest}, args...)...)
}

// shownError is a validation failure whose message is safe and useful to
// show the publisher (a fixed sentence, or input already checked to be
// printable); other details go to the log only.
type shownError struct{ msg string }

func (e *shownError) Error() string { return e.msg }
func (e *shownError) Unwrap() error { return errBadRequest }

func shown(format string, args ...any) error { return &shownError{fmt.Sprintf(format, args...)} }

// clientMessage is err's message when it is a shownError, else fallback.
func clientMessage(err error, fallback string) string {
	if se, ok := errors.AsType[*shownError](err); ok {
		return se.msg
	}
	return fallback
}

// draftErrorMessage is the client's message for the invalid item i: the
// item (in a batch), and what is wrong when the error says it clearly.
func draftErrorMessage(batch bool, i int, err error) string {
	msg := "invalid request"
	if batch {
		msg = fmt.Sprintf("invalid notification at index %d", i)
	}
	if m := clientMessage(err, ""); m != "" {
		msg += ": " + m
	}
	return msg
}

// validIdent checks tenant, user and role identifiers with
// notification.ValidIdent (the handlers of this package share it).
func validIdent(s string) bool { return notification.ValidIdent(s) }

// decodeStrict decodes one JSON value into v, refusing duplicate names
// (at any depth), unknown fields and trailing data.
func decodeStrict(data []byte, v any) error {
	if err := checkNames(data); err != nil {
		return err
	}
	return decodeFields(data, v)
}

// checkNames refuses a JSON value with a duplicate object name at any depth.
func checkNames(data []byte) error {
	if k, dup := notification.DuplicateKey(data); dup {
		return bad("json: duplicate key %s", k)
	}
	return nil
}

// decodeFields is decodeStrict for data checkNames has passed already (a
// publish body is checked once, whole, and its items are decoded with this).
func decodeFields(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bad("json: %v", err)
	}
	if dec.More() {
		return bad("trailing data after JSON value")
	}
	return nil
}

// parseItem decodes one item (its names already checked) as decodeFields
// does: with the reflection-free decoder (publish_decode.go) when it can,
// else with decodeFields itself, which gives the error.
func parseItem(raw []byte) (publishItem, error) {
	if it, ok := fastDecodeItem(raw); ok {
		return it, nil
	}
	var it publishItem
	err := decodeFields(raw, &it)
	return it, err
}

// scope fills the tenant from the key when the item names none, and
// checks the key may publish to it.
func (it *publishItem) scope(key auth.APIKey) error {
	if it.Tenant == "" && key.Tenant != "" {
		it.Tenant = key.Tenant
	}
	if !validIdent(it.Tenant) {
		return bad("tenant missing or malformed")
	}
	if !key.Allows(it.Tenant) {
		return errForbidden
	}
	return nil
}

// ephemeral reports whether the item asks for a live event.
func (it *publishItem) ephemeral() bool { return it.Ephemeral != nil && *it.Ephemeral }

// checkedData is checkData(it.Data), unless the decoder did it already.
func (it *publishItem) checkedData() (json.RawMessage, error) {
	if it.dataChecked {
		return it.Data, nil
	}
	return checkData(it.Data)
}

// toDraft validates one stored notification (parsed, with parseItem's
// error) against the key's scope.
func toDraft(it *publishItem, err error, key auth.APIKey, now time.Time) (notification.Draft, error) {
	if err == nil {
		err = it.scope(key)
	}
	if err != nil {
		return notification.Draft{}, err
	}
	d := notification.Draft{Tenant: it.Tenant, Type: it.Type, Title: it.Title, Body: it.Body}
	switch {
	case it.ephemeral():
		return d, shown(`"ephemeral": true is accepted on POST /v1/notifications only, one event at a time`)
	case it.To != nil && it.To.Topics != nil:
		return d, shown(`to.topics needs "ephemeral": true: topic events are live events, never stored`)
	}
	if d.Audience, err = it.To.audience(); err != nil {
		return d, err
	}
	if !notification.ValidType(d.Type) {
		return d, bad("type missing or malformed")
	}
	if !notification.ValidTitle(d.Title) {
		return d, bad("title missing or too long")
	}
	if !notification.ValidBody(d.Body) {
		return d, bad("body too long")
	}
	if d.Data, err = it.checkedData(); err != nil {
		return d, err
	}
	if it.ExpiresAt != nil {
		if !it.ExpiresAt.After(now) {
			return d, bad("expires_at must be in the future")
		}
		d.ExpiresAt = *it.ExpiresAt
	}
	if it.Fallback != nil {
		after, err := fallbackAfter(it.Fallback, d.Audience.Kind)
		if err != nil {
			return d, err
		}
		d.FallbackAfter = after
	}
	return d, inboxFields(it, &d)
}

// inboxFields validates and sets the category and collapse key of d.
func inboxFields(it *publishItem, d *notification.Draft) error {
	if it.Category != nil {
		if !notification.ValidCategory(*it.Category) {
			return shown("category must be 1..%d characters of a-z, 0-9, '.', '_' and '-'", notification.MaxCategoryLen)
		}
		d.Category = *it.Category
	}
	if it.CollapseKey != nil {
		switch k := *it.CollapseKey; {
		case d.Audience.Broadcast():
			return shown("collapse_key is only allowed with to.users")
		case len(k) > notification.MaxCollapseKeyLen:
			return shown("collapse_key is longer than %d bytes", notification.MaxCollapseKeyLen)
		case !notification.ValidCollapseKey(k):
			return shown("collapse_key must be non-empty, without control characters")
		default:
			d.CollapseKey = k
		}
	}
	return nil
}

// fallbackAfter validates a publish's fallback: explicit users only, a
// delay of 1 s to notification.MaxFallbackAfter.
func fallbackAfter(f *fallbackJSON, kind notification.AudienceKind) (time.Duration, error) {
	if kind != notification.AudienceUsers {
		return 0, bad("fallback is only for to.users (a tenant or role audience has no list of recipients to check)")
	}
	maxS := int64(notification.MaxFallbackAfter / time.Second)
	if f.AfterS == nil || *f.AfterS < 1 || *f.AfterS > maxS {
		return 0, bad("fallback.after_s must be an integer from 1 to %d", maxS)
	}
	return time.Duration(*f.AfterS) * time.Second, nil
}

// audience checks the users, tenant or role audience of an item (topics
// are the caller's to handle first).
func (to *audienceJSON) audience() (notification.Audience, error) {
	var a notification.Audience
	if to == nil {
		return a, bad("to missing")
	}
	set := 0
	if to.Users != nil {
		set++
		if len(to.Users) == 0 || len(to.Users) > maxUsersPerItem {
			return a, bad("to.users must hold 1..%d users", maxUsersPerItem)
		}
		for _, u := range to.Users {
			if !validIdent(u) {
				return a, bad("to.users: malformed user id")
			}
		}
		a = notification.Audience{Kind: notification.AudienceUsers, Users: to.Users}
	}
	if to.Tenant != nil {
		set++
		if !*to.Tenant {
			return a, bad("to.tenant must be true")
		}
		a = notification.Audience{Kind: notification.AudienceTenant}
	}
	if to.Role != nil {
		set++
		if !validIdent(*to.Role) {
			return a, bad("to.role malformed")
		}
		a = notification.Audience{Kind: notification.AudienceRole, Role: *to.Role}
	}
	if set != 1 {
		return a, bad("to needs exactly one of users, tenant, role")
	}
	return a, nil
}

// checkData accepts an absent or null data, or a JSON object of bounded
// depth, and returns it compacted (nil when absent).
func checkData(data json.RawMessage) (json.RawMessage, error) {
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return nil, nil
	}
	if data[0] != '{' {
		return nil, bad("data must be a JSON object")
	}
	if notification.JSONDepth(data, maxDataDepth) > maxDataDepth {
		return nil, bad("data nested too deeply")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		return nil, bad("data: %v", err)
	}
	return compact.Bytes(), nil
}

var errForbidden = errors.New("api key not allowed for this tenant")

// apiKey authenticates the publisher.
func (a *API) apiKey(w http.ResponseWriter, r *http.Request) (auth.APIKey, bool) {
	tok, _ := auth.BearerToken(r)
	key, ok := a.keys.Authenticate(tok)
	if tok == "" || !ok {
		a.cfg.Audit.Warn(audit.APIKeyInvalid, "api key rejected", "ip", a.adm.ClientIP(r), "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
		a.keyErrs.Fail(w, r, session.CodeUnauthorized, "invalid or missing API key", nil)
		return auth.APIKey{}, false
	}
	return key, true
}

// batchItems splits a batch body into its items, or answers the request.
func (a *API) batchItems(w http.ResponseWriter, r *http.Request, body []byte) ([][]byte, bool) {
	raws, ok := fastDecodeBatch(body)
	if !ok {
		var bb batchBody
		if err := decodeFields(body, &bb); err != nil {
			a.keyErrs.Fail(w, r, session.CodeInvalidRequest, "invalid request", err)
			return nil, false
		}
		raws = make([][]byte, len(bb.Notifications))
		for i, raw := range bb.Notifications {
			raws[i] = raw
		}
	}
	if len(raws) == 0 || len(raws) > a.cfg.MaxBatch {
		a.keyErrs.Fail(w, r, session.CodeInvalidRequest, fmt.Sprintf("a batch holds 1..%d notifications", a.cfg.MaxBatch), nil)
		return nil, false
	}
	return raws, true
}

func (a *API) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return nil, a.bodyFailed(w, r, err)
	}
	return body, a.validUTF8(w, r, body)
}

// bodyFailed answers a request whose body could not be read; false.
func (a *API) bodyFailed(w http.ResponseWriter, r *http.Request, err error) bool {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		a.keyErrs.Fail(w, r, session.CodeTooLarge, "request body too large", err)
		return false
	}
	a.keyErrs.Fail(w, r, session.CodeInvalidRequest, "unable to read request body", err)
	return false
}

// validUTF8 answers a request whose body is not UTF-8, and reports
// whether it is.
func (a *API) validUTF8(w http.ResponseWriter, r *http.Request, body []byte) bool {
	if !utf8.Valid(body) {
		a.keyErrs.Fail(w, r, session.CodeInvalidRequest, "invalid request", bad("invalid UTF-8"))
		return false
	}
	return true
}

func idempotencyKey(r *http.Request) (string, error) {
	k := r.Header.Get("Idempotency-Key")
	if len(k) > maxIdempotencyKey {
		return "", bad("Idempotency-Key longer than %d", maxIdempotencyKey)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return "", bad("Idempotency-Key must be printable ASCII")
		}
	}
	return k, nil
}

func (a *API) publish(w http.ResponseWriter, r *http.Request) {
	a.doPublish(w, r, false)
}

func (a *API) publishBatch(w http.ResponseWriter, r *http.Request) {
	a.doPublish(w, r, true)
}

func (a *API) doPublish(w http.ResponseWriter, r *http.Request, batch bool) {
	if a.cfg.OnPublish != nil {
		rec, start := a.recordPublish(w)
		defer a.published(rec, start)
		w = rec
	}
	key, ok := a.apiKey(w, r)
	if !ok {
		return
	}
	if !a.adm.AllowPublish(key.ID) { // records the refusal
		w.Header().Set("Retry-After", "1")
		a.keyErrs.Fail(w, r, session.CodeRateLimited, "publish rate limit exceeded", nil, "key_id", key.ID)
		return
	}
	maxBody := a.cfg.MaxBodyBytes
	if batch {
		maxBody = a.cfg.MaxBatchBodyBytes
	}
	buf := getBuffer()
	body, ok := a.readBodyInto(w, r, maxBody, *buf)
	defer func() { putBuffer(buf, body) }() // after the answer: nothing keeps body
	if !ok {
		return
	}
	ikey, err := idempotencyKey(r)
	if err != nil {
		a.keyErrs.Fail(w, r, session.CodeInvalidRequest, "invalid request", err)
		return
	}
	if err := checkNames(body); err != nil { // the whole body, batch items too
		a.keyErrs.Fail(w, r, session.CodeInvalidRequest, "invalid request", err)
		return
	}
	raws := [][]byte{body}
	var it publishItem
	var parsed error // parseItem's verdict on it
	if batch {
		if raws, ok = a.batchItems(w, r, body); !ok {
			return
		}
	} else {
		it, parsed = parseItem(body)
		if a.live(w, r, key, body, ikey, &it, parsed) {
			return // a live event: answered on the ephemeral path (live.go)
		}
	}
	now := time.Now()
	drafts := make([]notification.Draft, len(raws))
	for i, raw := range raws {
		if batch {
			it, parsed = parseItem(raw)
		}
		d, err := toDraft(&it, parsed, key, now)
		if errors.Is(err, errForbidden) {
			a.cfg.Audit.Warn(audit.Forbidden, "api key used outside its tenant", "key_id", key.ID, "ip", a.adm.ClientIP(r))
			a.keyErrs.Fail(w, r, session.CodeForbidden, "this API key may not publish to that tenant", err, "key_id", key.ID)
			return
		}
		if err != nil {
			a.keyErrs.Fail(w, r, session.CodeInvalidRequest, draftErrorMessage(batch, i, err), err, "key_id", key.ID)
			return
		}
		drafts[i] = d
	}
	req := store.PublishRequest{Scope: key.ID, Key: ikey, Drafts: drafts}
	if ikey != "" {
		req.RequestHash = requestHash(r.URL.Path, "\n", body)
	}
	a.commit(w, r, key, req, batch, body[:0])
}

// commit publishes req, waiting at most PublishTimeout, and answers the
// request; buf is a buffer for the answer. The store bounds the wait by
// req.Deadline: a context.WithTimeout would cost five allocations per
// publish.
func (a *API) commit(w http.ResponseWriter, r *http.Request, key auth.APIKey, req store.PublishRequest, batch bool, buf []byte) {
	req.Deadline = time.Now().Add(a.cfg.PublishTimeout)
	res, err := a.inbox.Publish(r.Context(), req)
	switch {
	case err == nil:
	case errors.Is(err, store.ErrIdempotencyMismatch):
		a.keyErrs.Fail(w, r, session.CodeIdempotencyMismatch, "Idempotency-Key was used with a different request", err, "key_id", key.ID)
		return
	case errors.Is(err, store.ErrInvalid):
		a.keyErrs.Fail(w, r, session.CodeInvalidRequest, "invalid request", err, "key_id", key.ID)
		return
	default:
		w.Header().Set("Retry-After", "1")
		a.keyErrs.Fail(w, r, session.CodeUnavailable, "the store did not confirm the notification in time (it may still be committed); retry with the same Idempotency-Key", err, "key_id", key.ID)
		return
	}
	if res.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if batch {
		session.WriteJSON(w, http.StatusCreated, map[string]any{"ids": res.IDs})
		return
	}
	// {"id":"…"}: an id is a ULID (26 characters of Crockford base32).
	b := append(buf, `{"id":"`...)
	b = append(b, res.IDs[0]...)
	session.WriteJSONBytes(w, http.StatusCreated, append(b, "\"}\n"...))
}
