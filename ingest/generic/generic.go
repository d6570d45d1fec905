// Package generic decodes any signed JSON delivery (an object, an array, or
// an array inside an object) by a configured mapping of canonical fields to
// paths in each item.
package generic

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest"
)

// SignatureHeader carries the sender's hex HMAC-SHA256 of the body.
const SignatureHeader = "X-Signature-SHA256"

// Mapping says where each canonical field is in an item. A value is a
// dotted path ("meta.user.id"; a number segment indexes an array), or a
// literal after "=" ("=opportunity"). Empty means not given.
type Mapping struct {
	// Items is the path of the array of items; empty means the body itself
	// (an array is the items, an object is one item).
	Items string `koanf:"items"`
	// Paths of the canonical fields. Entity, Record, Action and At are
	// required; Fields may point at an array of names or at an object whose
	// keys are the names.
	ID         string `koanf:"id"`
	Tenant     string `koanf:"tenant"`
	User       string `koanf:"user"`
	UserName   string `koanf:"user_name"`
	Entity     string `koanf:"entity"`
	Record     string `koanf:"record"`
	RecordName string `koanf:"record_name"`
	Action     string `koanf:"action"`
	Fields     string `koanf:"fields"`
	At         string `koanf:"at"`
	// Actions maps the sender's action values to canonical actions; a value
	// neither here nor canonical is counted as ignored.
	Actions map[string]crmpulse.Action `koanf:"actions"`
	// TimeUnit is the unit of a numeric At: "s", "ms" (the default) or "us".
	// A string At is read as ISO-8601.
	TimeUnit string `koanf:"time_unit"`
	// Source names the events' source; default "generic".
	Source string `koanf:"source"`
}

// Config holds the secret and mapping of the generic hook.
type Config struct {
	// Secret is the HMAC-SHA256 key (CRMPULSE_GENERIC_SECRET). Without it
	// every delivery is refused.
	Secret  string
	Mapping Mapping
}

// Hook decodes generic deliveries. It is safe for concurrent use.
type Hook struct {
	cfg Config
}

var _ ingest.Hook = (*Hook)(nil)

// New returns the generic hook.
func New(cfg Config) *Hook {
	if cfg.Mapping.Source == "" {
		cfg.Mapping.Source = "generic"
	}
	return &Hook{cfg: cfg}
}

// Name returns "generic".
func (h *Hook) Name() string { return "generic" }

// Decode checks the signature and maps each item to an event.
func (h *Hook) Decode(r *http.Request, body []byte, now time.Time) (*ingest.Delivery, error) {
	if err := ingest.CheckHMACSHA256(h.cfg.Secret, SignatureHeader, r.Header.Get(SignatureHeader), body); err != nil {
		return nil, err
	}
	var doc any
	if err := ingest.DecodeJSON(body, &doc); err != nil {
		return nil, err
	}
	items := []any{doc}
	if m := h.cfg.Mapping; m.Items != "" {
		list, ok := lookup(doc, m.Items).([]any)
		if !ok {
			return nil, ingest.BadRequest("%s is not an array", m.Items)
		}
		items = list
	} else if list, ok := doc.([]any); ok {
		items = list
	}

	d := &ingest.Delivery{}
	for i, item := range items {
		e, ok, err := h.event(item)
		if err != nil {
			return nil, ingest.BadRequest("item %d: %v", i, err)
		}
		if !ok {
			d.Ignore(scalar(h.value(item, h.cfg.Mapping.Action)))
			continue
		}
		d.Events = append(d.Events, e)
	}
	if err := ingest.Check(d.Events, now); err != nil {
		return nil, err
	}
	return d, nil
}

func (h *Hook) event(item any) (e crmpulse.Event, ok bool, err error) {
	m := &h.cfg.Mapping
	text := func(path string) string { return scalar(h.value(item, path)) }
	action, ok := m.Actions[text(m.Action)]
	if !ok {
		action = crmpulse.Action(text(m.Action))
		if action.Index() < 0 {
			return e, false, nil
		}
	}
	at, err := h.time(h.value(item, m.At))
	if err != nil {
		return e, false, fmt.Errorf("%s: %v", m.At, err)
	}
	e = crmpulse.Event{
		ID: text(m.ID), Tenant: text(m.Tenant), Source: m.Source,
		User: text(m.User), UserName: text(m.UserName),
		Entity: text(m.Entity), Record: text(m.Record), RecordName: text(m.RecordName),
		Action: action, At: at,
	}
	if action == crmpulse.Updated {
		e.Fields = names(h.value(item, m.Fields))
	}
	return e, true, nil
}

// value is the literal after "=", or what path points at in item.
func (h *Hook) value(item any, path string) any {
	if literal, ok := strings.CutPrefix(path, "="); ok {
		return literal
	}
	if path == "" {
		return nil
	}
	return lookup(item, path)
}

// lookup follows a dotted path through objects and arrays; nil when absent.
func lookup(v any, path string) any {
	for _, seg := range strings.Split(path, ".") {
		switch node := v.(type) {
		case map[string]any:
			v = node[seg]
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(node) {
				return nil
			}
			v = node[i]
		default:
			return nil
		}
	}
	return v
}

// scalar writes a string, number or boolean as text; anything else is "".
func scalar(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case json.Number:
		return s.String()
	case bool:
		return strconv.FormatBool(s)
	}
	return ""
}

// names reads an array of field names, or the keys of an object.
func names(v any) []string {
	var out []string
	switch f := v.(type) {
	case []any:
		for _, x := range f {
			if s := scalar(x); s != "" {
				out = append(out, s)
			}
		}
	case map[string]any:
		for k := range f {
			out = append(out, k)
		}
		slices.Sort(out)
	}
	return out
}

var units = map[string]time.Duration{"s": time.Second, "": time.Millisecond, "ms": time.Millisecond, "us": time.Microsecond}

func (h *Hook) time(v any) (time.Time, error) {
	switch t := v.(type) {
	case string:
		return ingest.ParseISO(t)
	case json.Number:
		unit, ok := units[h.cfg.Mapping.TimeUnit]
		if !ok {
			return time.Time{}, fmt.Errorf("unknown time unit %q", h.cfg.Mapping.TimeUnit)
		}
		return ingest.Epoch(t.String(), unit)
	}
	return time.Time{}, fmt.Errorf("want an ISO-8601 string or an epoch number")
}
