// Package zoho decodes Zoho CRM notification callbacks (actions/watch): one
// request naming many record ids, proved by the channel token it echoes.
package zoho

import (
	"net/http"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest"
)

// Source is the canonical source name of Zoho events.
const Source = "zoho"

// Config holds the secret of the Zoho hook.
type Config struct {
	// Token is the channel token given when enabling notifications, which
	// each callback echoes (CRMPULSE_ZOHO_TOKEN). Without it every callback
	// is refused.
	Token string
}

// Hook decodes Zoho callbacks. It is safe for concurrent use.
type Hook struct {
	cfg Config
}

var _ ingest.Hook = (*Hook)(nil)

// New returns the Zoho hook.
func New(cfg Config) *Hook {
	return &Hook{cfg: cfg}
}

// Name returns "zoho".
func (h *Hook) Name() string { return Source }

// callback is the captured shape; ids are above 2^53 and read as text.
type callback struct {
	ServerTime     ingest.Text           `json:"server_time"`
	Module         string                `json:"module"`
	IDs            []ingest.Text         `json:"ids"`
	Operation      string                `json:"operation"`
	Token          string                `json:"token"`
	AffectedFields []map[string][]string `json:"affected_fields"`
	AffectedValues []struct {
		RecordID ingest.Text `json:"record_id"`
		Values   struct {
			ModifiedBy *user `json:"Modified_By"`
			CreatedBy  *user `json:"Created_By"`
		} `json:"values"`
	} `json:"affected_values"`
}

type user struct {
	ID   ingest.Text `json:"id"`
	Name string      `json:"name"`
}

var operations = map[string]crmpulse.Action{
	"insert": crmpulse.Created,
	"update": crmpulse.Updated,
	"delete": crmpulse.Deleted,
}

var modules = map[string]string{
	"Leads":    crmpulse.Lead,
	"Deals":    crmpulse.Opportunity,
	"Accounts": crmpulse.Account,
	"Contacts": crmpulse.Contact,
}

// Decode checks the token and makes one event per id, in ids order.
func (h *Hook) Decode(r *http.Request, body []byte, now time.Time) (*ingest.Delivery, error) {
	var c callback
	if err := ingest.DecodeJSON(body, &c); err != nil {
		return nil, err
	}
	if !ingest.SecretEqual(c.Token, h.cfg.Token) {
		return nil, ingest.Unauthorized("token is missing or not CRMPULSE_ZOHO_TOKEN")
	}
	d := &ingest.Delivery{}
	action, ok := operations[c.Operation]
	if !ok {
		d.Ignore(c.Operation)
		return d, nil
	}
	at, err := ingest.Millis(string(c.ServerTime))
	if err != nil {
		return nil, ingest.BadRequest("server_time: %v", err)
	}
	entity := modules[c.Module]
	if entity == "" {
		entity = ingest.EntityName(c.Module)
	}
	for _, id := range c.IDs {
		e := crmpulse.Event{Source: Source, Entity: entity, Record: string(id), Action: action, At: at}
		if who := c.actor(id, action); who != nil {
			e.User, e.UserName = string(who.ID), who.Name
		}
		if action == crmpulse.Updated {
			e.Fields = c.fields(id)
		}
		d.Events = append(d.Events, e)
	}
	if err := ingest.Check(d.Events, now); err != nil {
		return nil, err
	}
	return d, nil
}

// actor is Modified_By from the record's affected values, or Created_By for
// an insert when present; nil leaves the event unattributed.
func (c *callback) actor(id ingest.Text, action crmpulse.Action) *user {
	for _, v := range c.AffectedValues {
		if v.RecordID != id {
			continue
		}
		if action == crmpulse.Created && v.Values.CreatedBy != nil && v.Values.CreatedBy.ID != "" {
			return v.Values.CreatedBy
		}
		if v.Values.ModifiedBy != nil && v.Values.ModifiedBy.ID != "" {
			return v.Values.ModifiedBy
		}
	}
	return nil
}

func (c *callback) fields(id ingest.Text) []string {
	var fields []string
	for _, m := range c.AffectedFields {
		fields = append(fields, m[string(id)]...)
	}
	return fields
}
