// Package pipedrive decodes Pipedrive webhooks, version 2 and the older
// version 1, sent with HTTP Basic authentication.
package pipedrive

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest"
)

// Source is the canonical source name of Pipedrive events.
const Source = "pipedrive"

// Config holds the Basic auth credentials the webhook was created with.
type Config struct {
	// User is http_auth_user (CRMPULSE_PIPEDRIVE_USER).
	User string
	// Password is http_auth_password (CRMPULSE_PIPEDRIVE_PASSWORD). Without
	// it every delivery is refused.
	Password string
}

// Hook decodes Pipedrive deliveries. It is safe for concurrent use.
type Hook struct {
	cfg Config
}

var _ ingest.Hook = (*Hook)(nil)

// New returns the Pipedrive hook.
func New(cfg Config) *Hook {
	return &Hook{cfg: cfg}
}

// Name returns "pipedrive".
func (h *Hook) Name() string { return Source }

// delivery holds both versions: v2 has meta.entity and data, v1 has
// meta.object, meta.id (the record) and current.
type delivery struct {
	Meta struct {
		Action    string      `json:"action"`
		Entity    string      `json:"entity"`
		Object    string      `json:"object"`
		EntityID  ingest.Text `json:"entity_id"`
		ID        ingest.Text `json:"id"`
		CompanyID ingest.Text `json:"company_id"`
		UserID    ingest.Text `json:"user_id"`
		Timestamp ingest.Text `json:"timestamp"`
		Version   ingest.Text `json:"version"`
		V         ingest.Text `json:"v"`
	} `json:"meta"`
	Data     map[string]json.RawMessage `json:"data"`
	Current  map[string]json.RawMessage `json:"current"`
	Previous map[string]json.RawMessage `json:"previous"`
}

// Decode checks the Basic auth and makes the delivery's one event.
func (h *Hook) Decode(r *http.Request, body []byte, now time.Time) (*ingest.Delivery, error) {
	user, password, _ := r.BasicAuth()
	userOK := ingest.SecretEqual(user, h.cfg.User) || h.cfg.User == "" && user == ""
	if !ingest.SecretEqual(password, h.cfg.Password) || !userOK {
		return nil, ingest.Unauthorized("HTTP Basic credentials are missing or not CRMPULSE_PIPEDRIVE_USER/PASSWORD")
	}
	var p delivery
	if err := ingest.DecodeJSON(body, &p); err != nil {
		return nil, err
	}
	d := &ingest.Delivery{}
	e, ok, err := p.event()
	if err != nil {
		return nil, ingest.BadRequest("%v", err)
	}
	if !ok {
		d.Ignore(p.Meta.Action)
		return d, nil
	}
	d.Events = []crmpulse.Event{e}
	if err := ingest.Check(d.Events, now); err != nil {
		return nil, err
	}
	return d, nil
}

var actions = map[string]crmpulse.Action{
	"create": crmpulse.Created, "change": crmpulse.Updated, "delete": crmpulse.Deleted,
	"added": crmpulse.Created, "updated": crmpulse.Updated, "merged": crmpulse.Updated, "deleted": crmpulse.Deleted,
}

var entities = map[string]string{
	"deal":         crmpulse.Opportunity,
	"person":       crmpulse.Contact,
	"organization": crmpulse.Account,
	"lead":         crmpulse.Lead,
}

func (p *delivery) event() (e crmpulse.Event, ok bool, err error) {
	action, ok := actions[p.Meta.Action]
	if !ok {
		return e, false, nil
	}
	at, err := timestamp(string(p.Meta.Timestamp))
	if err != nil {
		return e, false, fmt.Errorf("meta.timestamp: %v", err)
	}
	e = crmpulse.Event{
		ID: string(p.Meta.ID), Tenant: string(p.Meta.CompanyID), Source: Source,
		User: string(p.Meta.UserID), Record: string(p.Meta.EntityID), Action: action, At: at,
	}
	// Version 2 sends only the changed fields as previous; version 1 the
	// whole previous state, and meta.id is the record, not an event id.
	object, state, current := p.Meta.Entity, p.Data, map[string]json.RawMessage(nil)
	if p.Meta.Entity == "" {
		object, state, current = p.Meta.Object, p.Current, p.Current
		e.ID, e.Record = "", string(p.Meta.ID)
	}
	e.Entity = entities[object]
	if e.Entity == "" {
		e.Entity = ingest.EntityName(object)
	}
	e.RecordName = name(state)
	if action == crmpulse.Updated {
		e.Fields = changed(p.Previous, current)
	}
	return e, true, nil
}

// name is data.title (deal, lead) or data.name (person, organization).
func name(state map[string]json.RawMessage) string {
	for _, key := range []string{"title", "name"} {
		var s string
		if json.Unmarshal(state[key], &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

// changed lists the keys of previous whose value differs from current (all
// of them when current is nil).
func changed(previous, current map[string]json.RawMessage) []string {
	var fields []string
	for k, v := range previous {
		if cur, ok := current[k]; !ok || !ingest.SameJSON(cur, v) {
			fields = append(fields, k)
		}
	}
	slices.Sort(fields)
	return fields
}

// timestamp reads meta.timestamp: an ISO string, or digits that are Unix
// seconds (10 digits, as v1 and v2's field table say) or milliseconds (13).
func timestamp(s string) (time.Time, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return ingest.ParseISO(s)
	}
	if len(s) <= 11 {
		return ingest.Epoch(s, time.Second)
	}
	return ingest.Millis(s)
}
