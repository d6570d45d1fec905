// Package salesforce decodes Salesforce changes: Change Data Capture events
// in the Streaming API JSON shape, posted by a relay (hook "salesforce") or
// read from a Kafka topic (DecodeChangeEvent), and SOAP Outbound Messages
// (hook "salesforce-outbound"). Both give events of source "salesforce",
// with 18-character ids.
package salesforce

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest"
)

// Source is the canonical source name of every Salesforce event.
const Source = "salesforce"

// SignatureHeader carries the relay's hex HMAC-SHA256 of the body.
const SignatureHeader = "X-Signature-SHA256"

// Config holds the secrets of the change-event hook.
type Config struct {
	// Secret is the HMAC-SHA256 key of the relay that posts change events
	// (CRMPULSE_SALESFORCE_SECRET). Without it every delivery is refused.
	Secret string
	// OrgID is the organisation id, used as the tenant since change events
	// do not carry it (CRMPULSE_SALESFORCE_ORG_ID). Empty means "default".
	OrgID string
}

// Hook decodes change events posted by a relay. It is safe for concurrent
// use.
type Hook struct {
	cfg Config
}

var _ ingest.Hook = (*Hook)(nil)

// New returns the change-event hook.
func New(cfg Config) *Hook {
	return &Hook{cfg: cfg}
}

// Name returns "salesforce".
func (h *Hook) Name() string { return Source }

// Decode checks the relay's signature and decodes the change event, or a
// JSON array of them as a CometD client receives them.
func (h *Hook) Decode(r *http.Request, body []byte, now time.Time) (*ingest.Delivery, error) {
	if err := ingest.CheckHMACSHA256(h.cfg.Secret, SignatureHeader, r.Header.Get(SignatureHeader), body); err != nil {
		return nil, err
	}
	t := bytes.TrimSpace(body)
	if len(t) == 0 || t[0] != '[' {
		return DecodeChangeEvent(body, h.cfg.OrgID, now)
	}
	var messages []json.RawMessage
	if err := ingest.DecodeJSON(body, &messages); err != nil {
		return nil, err
	}
	all := &ingest.Delivery{}
	for _, m := range messages {
		d, err := DecodeChangeEvent(m, h.cfg.OrgID, now)
		if err != nil {
			return nil, err
		}
		all.Merge(d)
	}
	return all, nil
}

// changeEvent is a CDC event: a Bayeux message ({"channel", "data":
// {"payload"}}), its data, or a bare payload as the Pub/Sub API gives it
// after Avro decoding.
type changeEvent struct {
	Data    *changeEvent     `json:"data"`
	Payload *changeEvent     `json:"payload"`
	Header  *header          `json:"ChangeEventHeader"`
	Name    json.RawMessage  `json:"Name"`
	First   *json.RawMessage `json:"FirstName"`
	Last    *json.RawMessage `json:"LastName"`
}

type header struct {
	EntityName      string      `json:"entityName"`
	RecordIDs       []string    `json:"recordIds"`
	ChangeType      string      `json:"changeType"`
	ChangeOrigin    string      `json:"changeOrigin"`
	CommitTimestamp ingest.Text `json:"commitTimestamp"`
	CommitUser      string      `json:"commitUser"`
	ChangedFields   []string    `json:"changedFields"`
}

// payload finds the part that holds ChangeEventHeader.
func (c *changeEvent) payload() *changeEvent {
	for depth := 0; c != nil && depth < 3; depth++ {
		switch {
		case c.Header != nil:
			return c
		case c.Payload != nil:
			c = c.Payload
		default:
			c = c.Data
		}
	}
	return nil
}

var changeTypes = map[string]crmpulse.Action{
	"CREATE": crmpulse.Created, "GAP_CREATE": crmpulse.Created,
	"UPDATE": crmpulse.Updated, "GAP_UPDATE": crmpulse.Updated,
	"DELETE": crmpulse.Deleted, "GAP_DELETE": crmpulse.Deleted,
	"UNDELETE": crmpulse.Restored, "GAP_UNDELETE": crmpulse.Restored,
}

// DecodeChangeEvent decodes one change event (a Bayeux message, its data, or
// a bare Pub/Sub payload) into one event per record id, with tenant the org
// id ("default" when empty). GAP_OVERFLOW is counted in Gaps by entity;
// SNAPSHOT, unknown change types and wildcard record ids in Ignored. A
// malformed event is an *ingest.Error.
func DecodeChangeEvent(data []byte, tenant string, now time.Time) (*ingest.Delivery, error) {
	var msg changeEvent
	if err := ingest.DecodeJSON(data, &msg); err != nil {
		return nil, err
	}
	p := msg.payload()
	if p == nil {
		return nil, ingest.BadRequest("no ChangeEventHeader in data.payload or at the top level")
	}
	h := p.Header
	entity := entityName(h.EntityName)
	d := &ingest.Delivery{}
	if h.ChangeType == "GAP_OVERFLOW" {
		d.Gap(entity)
		return d, nil
	}
	action, ok := changeTypes[h.ChangeType]
	if !ok {
		d.Ignore(h.ChangeType)
		return d, nil
	}
	at, err := ingest.Millis(string(h.CommitTimestamp))
	if err != nil {
		return nil, ingest.BadRequest("ChangeEventHeader.commitTimestamp: %v", err)
	}
	if tenant == "" {
		tenant = crmpulse.DefaultTenant
	}

	proto := crmpulse.Event{
		Tenant: ID18(tenant), Source: Source, User: ID18(h.CommitUser),
		Entity: entity, RecordName: p.recordName(entity),
		Action: action, At: at, Origin: h.ChangeOrigin,
	}
	if h.ChangeType == "UPDATE" {
		proto.Fields = fieldNames(h.ChangedFields)
	}
	for _, id := range h.RecordIDs {
		if strings.Contains(id, "*") {
			d.Ignore("wildcard recordIds")
			continue
		}
		e := proto
		e.Record = ID18(id)
		d.Events = append(d.Events, e)
	}
	if err := ingest.Check(d.Events, now); err != nil {
		return nil, err
	}
	return d, nil
}

// bitmap matches the Pub/Sub form of changedFields ("0x650004E0",
// "4-0x10"), which only the event's Avro schema can turn into names.
var bitmap = regexp.MustCompile(`^([0-9]+-)?0x[0-9A-Fa-f]+$`)

func fieldNames(changed []string) []string {
	var names []string
	for _, f := range changed {
		if !bitmap.MatchString(f) {
			names = append(names, f)
		}
	}
	return names
}

// recordName is the name the body carries: Name when it is a string, else
// FirstName and LastName of a lead or contact (top level or inside a
// compound Name). Pub/Sub's null means unchanged, not a name.
func (c *changeEvent) recordName(entity string) string {
	var name string
	if json.Unmarshal(c.Name, &name) == nil && name != "" {
		return name
	}
	if entity != crmpulse.Lead && entity != crmpulse.Contact {
		return ""
	}
	first, last := c.First, c.Last
	var compound changeEvent
	if json.Unmarshal(c.Name, &compound) == nil && (compound.First != nil || compound.Last != nil) {
		first, last = compound.First, compound.Last
	}
	return personName(rawString(first), rawString(last))
}

func rawString(raw *json.RawMessage) string {
	var s string
	if raw != nil {
		_ = json.Unmarshal(*raw, &s)
	}
	return s
}

// personName joins a first and a last name, either of which may be empty.
func personName(first, last string) string {
	return strings.TrimSpace(first + " " + last)
}

var entities = map[string]string{
	"Lead":        crmpulse.Lead,
	"Opportunity": crmpulse.Opportunity,
	"Account":     crmpulse.Account,
	"Contact":     crmpulse.Contact,
}

// entityName maps a Salesforce object name (Lead, MyObject__c) to an entity.
func entityName(object string) string {
	if e, ok := entities[object]; ok {
		return e
	}
	return ingest.EntityName(object)
}
