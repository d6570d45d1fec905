package crmpulse

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// Action is what a change event did to a record.
type Action string

// The actions a change event can carry. Merges and undeletes map onto these.
const (
	Created  Action = "created"
	Updated  Action = "updated"
	Deleted  Action = "deleted"
	Restored Action = "restored"
)

// Actions lists every action in the order reports show them.
var Actions = []Action{Created, Updated, Deleted, Restored}

// Index returns the action's position in Actions, or -1 for an unknown one.
func (a Action) Index() int {
	for i, b := range Actions {
		if a == b {
			return i
		}
	}
	return -1
}

// The four entities every report lists. Other lowercase names are allowed.
const (
	Lead        = "lead"
	Opportunity = "opportunity"
	Account     = "account"
	Contact     = "contact"
)

// Entities lists the entities a report always names, in display order.
var Entities = []string{Lead, Opportunity, Account, Contact}

// Defaults for an event that does not name its tenant or source.
const (
	DefaultTenant = "default"
	DefaultSource = "api"
)

// MaxFutureSkew is how far past the receiver's clock an event may be dated.
const MaxFutureSkew = 5 * time.Minute

// Event is one change to one CRM record by one user, in the form every
// source is decoded into. It is the unit of the log, of the state and of
// the transaction table.
type Event struct {
	// ID is unique within Tenant and Source and stable across redeliveries.
	// Empty means the identity is derived (see Identity).
	ID         string    `json:"id"`
	Tenant     string    `json:"tenant"`
	Source     string    `json:"source"`
	User       string    `json:"user"`
	UserName   string    `json:"user_name,omitempty"`
	Entity     string    `json:"entity"`
	Record     string    `json:"record"`
	RecordName string    `json:"record_name,omitempty"`
	Action     Action    `json:"action"`
	Fields     []string  `json:"fields,omitempty"`
	At         time.Time `json:"at"`
	Received   time.Time `json:"received,omitzero"`
	// Origin tells automation and imports from people where the source
	// says so (HubSpot changeSource, Salesforce changeOrigin).
	Origin string `json:"origin,omitempty"`
}

// Identity returns the event's identity within its tenant and source: the
// source's own ID where there is one, else a digest of the tenant, source,
// entity, record, action and instant, so that a redelivery of the same change
// has the same identity however its time was written.
func (e *Event) Identity() string {
	if e.ID != "" {
		return e.ID
	}
	h := sha256.New()
	for _, s := range []string{e.Tenant, e.Source, e.Entity, e.Record, string(e.Action)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write([]byte(strconv.FormatInt(e.At.UnixNano(), 10)))
	return "~" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Key identifies the event across tenants and sources; the state applies
// each key once.
func (e *Event) Key() string {
	return e.Tenant + "\x00" + e.Source + "\x00" + e.Identity()
}

// Normalize fills the defaults for an empty tenant and source and puts the
// times in UTC.
func (e *Event) Normalize() {
	if e.Tenant == "" {
		e.Tenant = DefaultTenant
	}
	if e.Source == "" {
		e.Source = DefaultSource
	}
	e.At = e.At.UTC()
	if !e.Received.IsZero() {
		e.Received = e.Received.UTC()
	}
}

// FieldError says what is wrong with one field of one item of a request.
// Index counts items from 0 in the order received; Line is set instead for
// CSV input.
type FieldError struct {
	Index  *int   `json:"index,omitempty"`
	Line   int    `json:"line,omitempty"`
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// isEntityName reports whether s is lowercase letters, digits and _,
// starting with a letter (^[a-z][a-z0-9_]*$), without a regexp: Validate
// runs for every event at ingest and again as the log is read.
func isEntityName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || i > 0 && ('0' <= c && c <= '9' || c == '_')) {
			return false
		}
	}
	return s != ""
}

// Validate lists what is wrong with a normalized event, judged at now; nil
// means it is valid. An empty User is valid: the event is unattributed.
func (e *Event) Validate(now time.Time) []FieldError {
	var errs []FieldError
	bad := func(field, detail string) {
		errs = append(errs, FieldError{Field: field, Detail: detail})
	}
	switch {
	case e.Entity == "":
		bad("entity", "required")
	case len(e.Entity) > 64:
		bad("entity", "must be at most 64 bytes")
	case !isEntityName(e.Entity):
		bad("entity", "must be lowercase letters, digits and _, starting with a letter")
	}
	if strings.TrimSpace(e.Record) == "" {
		bad("record", "required")
	}
	if e.Action == "" {
		bad("action", "required")
	} else if e.Action.Index() < 0 {
		bad("action", "must be one of created, updated, deleted, restored")
	}
	switch {
	case e.At.IsZero():
		bad("at", "required")
	case e.At.Year() < 1970 || e.At.Year() > 9999:
		bad("at", "must be between 1970 and 9999")
	case e.At.After(now.Add(MaxFutureSkew)):
		bad("at", "more than five minutes in the future")
	}
	// These are parts of keys in the state (Badger refuses keys over
	// 65,000 bytes) and of the log's partition key.
	for _, f := range [...]struct{ name, v string }{{"id", e.ID}, {"tenant", e.Tenant}, {"source", e.Source}, {"user", e.User}, {"record", e.Record}} {
		if strings.IndexByte(f.v, 0) >= 0 || len(f.v) > 512 {
			bad(f.name, "must be at most 512 bytes with no NUL")
		}
	}
	return errs
}

// UserKey names the user an event counts for in a report before the
// directory maps it: the user id, or unattributed:SOURCE when the source
// did not say who acted.
func (e *Event) UserKey() string {
	if e.User == "" {
		return "unattributed:" + e.Source
	}
	return e.User
}
