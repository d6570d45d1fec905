// Package businesscentral decodes Dynamics 365 Business Central API webhook
// notifications and answers its validationToken handshake.
//
// Business Central deletes a subscription whose notification gets any
// answer but 2xx, 408, 429 or 5xx, so once a delivery's clientState checks
// out it is always acknowledged: what cannot be counted goes to dead letters.
package businesscentral

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest"
)

// Source is the canonical source name of Business Central events.
const Source = "businesscentral"

// Config holds the settings of the Business Central hook.
type Config struct {
	// ClientState is the shared secret given when subscribing, which every
	// notification echoes (CRMPULSE_BUSINESSCENTRAL_CLIENT_STATE). Without
	// it every notification is refused.
	ClientState string
	// Entities maps a resource name (customers) to the entity it counts as
	// (account), ahead of the default: the resource's singular in
	// snake_case (customers is customer, salesOrders is sales_order, G/L
	// accounts is gl_account).
	Entities map[string]string
}

// Hook decodes Business Central deliveries. It is safe for concurrent use.
type Hook struct {
	cfg Config
}

var _ ingest.Hook = (*Hook)(nil)

// New returns the Business Central hook.
func New(cfg Config) *Hook {
	return &Hook{cfg: cfg}
}

// Name returns "businesscentral".
func (h *Hook) Name() string { return Source }

type notification struct {
	ClientState          string `json:"clientState"`
	Resource             string `json:"resource"`
	ChangeType           string `json:"changeType"`
	LastModifiedDateTime string `json:"lastModifiedDateTime"`
}

// Decode answers a handshake with its token, or checks the clientState of
// every notification and makes one event per notification that names a
// record.
func (h *Hook) Decode(r *http.Request, body []byte, now time.Time) (*ingest.Delivery, error) {
	if token, ok := r.URL.Query()["validationToken"]; ok {
		return &ingest.Delivery{Status: http.StatusOK, ContentType: "text/plain; charset=utf-8",
			Body: []byte(strings.Join(token, ""))}, nil
	}
	var envelope struct {
		Value []json.RawMessage `json:"value"`
	}
	if err := ingest.DecodeJSON(body, &envelope); err != nil {
		return nil, err
	}
	// A delivery is Business Central's when some notification carries the
	// clientState and none carries another; one without any is dead-lettered.
	items := make([]notification, len(envelope.Value))
	readable := make([]bool, len(envelope.Value))
	for i, raw := range envelope.Value {
		readable[i] = json.Unmarshal(raw, &items[i]) == nil && items[i].ClientState != ""
		if readable[i] && !ingest.SecretEqual(items[i].ClientState, h.cfg.ClientState) {
			return nil, ingest.Unauthorized("notification %d: clientState is not CRMPULSE_BUSINESSCENTRAL_CLIENT_STATE", i)
		}
	}
	if len(items) > 0 && !slices.Contains(readable, true) {
		return nil, ingest.Unauthorized("no notification carries a clientState")
	}

	d := &ingest.Delivery{}
	for i, raw := range envelope.Value {
		if !readable[i] {
			d.DeadLetter("not a notification object with a clientState", raw)
			continue
		}
		e, err := h.event(&items[i])
		if err == nil {
			if errs := ingest.Invalid(&e, now); errs != nil {
				err = fmt.Errorf("%s %s", errs[0].Field, errs[0].Detail)
			}
		}
		if err != nil {
			d.DeadLetter(err.Error(), raw)
			continue
		}
		// Business Central never says who acted; the record may.
		d.Lookups = append(d.Lookups, ingest.Lookup{Event: len(d.Events), Resource: items[i].Resource})
		d.Events = append(d.Events, e)
	}
	return d, nil
}

var changeTypes = map[string]crmpulse.Action{
	"created": crmpulse.Created,
	"updated": crmpulse.Updated,
	"deleted": crmpulse.Deleted,
}

// event reads one notification; Business Central never says who acted, so
// the event is unattributed.
func (h *Hook) event(n *notification) (crmpulse.Event, error) {
	if n.ChangeType == "collection" {
		return crmpulse.Event{}, fmt.Errorf("collection notification names no record, only a filter (%s), and no fetch is configured", n.Resource)
	}
	action, ok := changeTypes[n.ChangeType]
	if !ok {
		return crmpulse.Event{}, fmt.Errorf("unknown changeType %q", n.ChangeType)
	}
	company, resource, record, err := parseResource(n.Resource)
	if err != nil {
		return crmpulse.Event{}, err
	}
	at, err := ingest.ParseISO(n.LastModifiedDateTime)
	if err != nil {
		return crmpulse.Event{}, fmt.Errorf("lastModifiedDateTime: %v", err)
	}
	return crmpulse.Event{
		Tenant: company, Source: Source, Entity: h.entity(resource),
		Record: record, Action: action, At: at,
	}, nil
}

// parseResource reads ".../companies(<id>)/<resource>(<id>)", with or without
// a leading "/", into the lowercase company id, the resource name and the
// lowercase record id.
func parseResource(s string) (company, resource, record string, err error) {
	path, _, _ := strings.Cut(strings.TrimPrefix(s, "/"), "?")
	segments := strings.Split(path, "/")
	for _, seg := range segments {
		if name, id, ok := keyed(seg); ok && name == "companies" {
			company = id
		}
	}
	resource, record, ok := keyed(segments[len(segments)-1])
	if !ok || company == "" || resource == "companies" {
		return "", "", "", fmt.Errorf("resource %q names no companies(id)/entity(id)", s)
	}
	return company, resource, record, nil
}

// keyed splits "name(id)" into name and the lowercase id without quotes.
func keyed(seg string) (name, id string, ok bool) {
	name, rest, found := strings.Cut(seg, "(")
	id, found2 := strings.CutSuffix(rest, ")")
	id = strings.ToLower(strings.Trim(id, "'"))
	return name, id, found && found2 && name != "" && id != ""
}

// entity is the configured entity of a resource, else its singular in
// snake_case.
func (h *Hook) entity(resource string) string {
	if e, ok := h.cfg.Entities[resource]; ok {
		return e
	}
	if resource == "accounts" {
		return "gl_account"
	}
	return ingest.EntityName(snake(singular(resource)))
}

func singular(s string) string {
	switch {
	case strings.HasSuffix(s, "ies"):
		return strings.TrimSuffix(s, "ies") + "y"
	case strings.HasSuffix(s, "sses"), strings.HasSuffix(s, "xes"):
		return s[:len(s)-2]
	}
	return strings.TrimSuffix(s, "s")
}

// snake writes camelCase as snake_case: salesOrder is sales_order.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
