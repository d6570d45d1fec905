// Package dynamics decodes Microsoft Dataverse (Dynamics 365 Customer
// Engagement) webhooks: one serialised RemoteExecutionContext per request,
// authenticated by a static key.
package dynamics

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest"
)

// Source is the canonical source name of Dataverse events.
const Source = "dynamics"

// Config holds the secrets of the Dataverse hook.
type Config struct {
	// Key is the value Dataverse sends (CRMPULSE_DYNAMICS_KEY): the `code`
	// query value of a WebhookKey registration, or the value of Header.
	// Without it every delivery is refused.
	Key string
	// Header names the header that carries Key for an HttpHeader
	// registration; empty means the `code` query value.
	Header string
}

// Hook decodes Dataverse deliveries. It is safe for concurrent use.
type Hook struct {
	cfg Config
}

var _ ingest.Hook = (*Hook)(nil)

// New returns the Dataverse hook.
func New(cfg Config) *Hook {
	return &Hook{cfg: cfg}
}

// Name returns "dynamics".
func (h *Hook) Name() string { return Source }

// context is the part of a RemoteExecutionContext that is read.
type context struct {
	MessageName        string      `json:"MessageName"`
	PrimaryEntityName  string      `json:"PrimaryEntityName"`
	PrimaryEntityID    string      `json:"PrimaryEntityId"`
	InitiatingUserID   string      `json:"InitiatingUserId"`
	OrganizationID     string      `json:"OrganizationId"`
	OperationCreatedOn string      `json:"OperationCreatedOn"`
	Stage              ingest.Text `json:"Stage"`
	InputParameters    []parameter `json:"InputParameters"`
	PostEntityImages   []parameter `json:"PostEntityImages"`
}

// parameter is one {"key", "value"} pair of a Dataverse collection.
type parameter struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// entity is an Entity or EntityReference value.
type entity struct {
	ID         string      `json:"Id"`
	Attributes []parameter `json:"Attributes"`
}

// Decode checks the key and makes the context's event, or none for a
// message that is not counted or a step that runs before the commit.
func (h *Hook) Decode(r *http.Request, body []byte, now time.Time) (*ingest.Delivery, error) {
	sent := r.URL.Query().Get("code")
	if h.cfg.Header != "" {
		sent = r.Header.Get(h.cfg.Header)
	}
	if !ingest.SecretEqual(sent, h.cfg.Key) {
		return nil, ingest.Unauthorized("the Dataverse key (CRMPULSE_DYNAMICS_KEY) is missing or wrong")
	}
	var c context
	if err := ingest.DecodeJSON(body, &c); err != nil {
		return nil, err
	}

	d := &ingest.Delivery{}
	if c.Stage == "10" || c.Stage == "20" {
		// Pre-validation and pre-operation steps can still roll back.
		d.Ignore(c.MessageName + " before commit")
		return d, nil
	}
	action, fields, ok := c.action()
	if !ok {
		d.Ignore(c.MessageName)
		return d, nil
	}
	at, err := parseDate(c.OperationCreatedOn)
	if err != nil {
		return nil, ingest.BadRequest("OperationCreatedOn: %v", err)
	}
	target := c.target()
	record := c.PrimaryEntityID
	if record == "" {
		record = target.ID
	}
	d.Events = []crmpulse.Event{{
		Tenant: strings.ToLower(c.OrganizationID), Source: Source,
		User:   strings.ToLower(c.InitiatingUserID),
		Entity: ingest.EntityName(c.PrimaryEntityName), Record: strings.ToLower(record),
		RecordName: c.recordName(target), Action: action, Fields: fields, At: at,
	}}
	if err := ingest.Check(d.Events, now); err != nil {
		return nil, err
	}
	return d, nil
}

// action maps the message; fields are the changed attributes of an update.
func (c *context) action() (crmpulse.Action, []string, bool) {
	switch c.MessageName {
	case "Create":
		return crmpulse.Created, nil, true
	case "Update":
		return crmpulse.Updated, keys(c.target().Attributes), true
	case "Assign":
		return crmpulse.Updated, []string{"ownerid"}, true
	case "SetState", "SetStateDynamicEntity":
		return crmpulse.Updated, []string{"statecode", "statuscode"}, true
	case "Merge":
		return crmpulse.Updated, nil, true
	case "Delete":
		return crmpulse.Deleted, nil, true
	}
	return "", nil, false
}

// target is the Target input parameter, empty when absent (an oversize
// message has none).
func (c *context) target() entity {
	return entityOf(c.InputParameters, "Target")
}

// recordName is fullname or name from the Target, else from the
// AsynchronousStepPrimaryName post image.
func (c *context) recordName(target entity) string {
	for _, e := range []entity{target, entityOf(c.PostEntityImages, "AsynchronousStepPrimaryName")} {
		for _, key := range []string{"fullname", "name"} {
			var s string
			if json.Unmarshal(valueOf(e.Attributes, key), &s) == nil && s != "" {
				return s
			}
		}
	}
	return ""
}

// entityOf reads the Entity value of key, empty when absent.
func entityOf(params []parameter, key string) entity {
	var e entity
	_ = json.Unmarshal(valueOf(params, key), &e)
	return e
}

// valueOf is the raw value of key, nil when absent.
func valueOf(params []parameter, key string) json.RawMessage {
	for _, p := range params {
		if p.Key == key {
			return p.Value
		}
	}
	return nil
}

func keys(params []parameter) []string {
	var ks []string
	for _, p := range params {
		ks = append(ks, p.Key)
	}
	return ks
}

var wcfDate = regexp.MustCompile(`^/Date\((-?[0-9]+)([+-][0-9]{4})?\)/$`)

// parseDate reads a WCF date "/Date(ms±hhmm)/": ms is the UTC instant and the
// offset only marks a local DateTime, so it is ignored.
func parseDate(s string) (time.Time, error) {
	m := wcfDate.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, fmt.Errorf("want /Date(ms±hhmm)/, got %.40q", s)
	}
	return ingest.Millis(m[1])
}
