package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/internal/jsontext"
)

// DecodeEvents reads canonical events posted as a JSON array or as NDJSON
// (one object a line). A body that is not JSON at all is an *Error 400. An
// event with bad fields is left out of the result, and each of its problems
// is listed by index; the events and problems are in the order received.
//
// A body of plain events is read in one pass (readPosted); any other, and
// one with a mistake in it, through encoding/json, which names what is
// wrong. Through reflection alone, decoding was a third of the server's CPU
// in figure 6 of make bench.
func DecodeEvents(body []byte, now time.Time) ([]crmpulse.Event, []int, []crmpulse.FieldError, error) {
	if posted, ok := readPosted(body); ok {
		return collect(len(posted), func(i int) (crmpulse.Event, []crmpulse.FieldError) {
			return posted[i].event(now)
		})
	}
	return decodeSlowly(body, now)
}

// decodeSlowly is DecodeEvents through encoding/json.
func decodeSlowly(body []byte, now time.Time) ([]crmpulse.Event, []int, []crmpulse.FieldError, error) {
	raws, err := splitItems(body)
	if err != nil {
		return nil, nil, nil, err
	}
	return collect(len(raws), func(i int) (crmpulse.Event, []crmpulse.FieldError) {
		return decodeEvent(raws[i], now)
	})
}

// collect decodes n items with decode, keeping the valid events with
// their indexes and the problems of the others.
func collect(n int, decode func(i int) (crmpulse.Event, []crmpulse.FieldError)) ([]crmpulse.Event, []int, []crmpulse.FieldError, error) {
	events, indexes := make([]crmpulse.Event, 0, n), make([]int, 0, n)
	var errs []crmpulse.FieldError
	for i := range n {
		e, bad := decode(i)
		for _, fe := range bad {
			fe.Index = &i
			errs = append(errs, fe)
		}
		if len(bad) == 0 {
			events = append(events, e)
			indexes = append(indexes, i)
		}
	}
	return events, indexes, errs, nil
}

// splitItems splits a JSON array or NDJSON body into its items.
func splitItems(body []byte) ([]json.RawMessage, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, BadRequest("the body is empty: send a JSON array of events or NDJSON")
	}
	if trimmed[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(trimmed, &items); err != nil {
			return nil, BadRequest("the body is not a JSON array of events: %v", err)
		}
		return items, nil
	}
	var items []json.RawMessage
	line := 0
	for text := range bytes.Lines(trimmed) {
		line++
		text = bytes.TrimSpace(text)
		if len(text) == 0 {
			continue
		}
		if text[0] != '{' {
			return nil, BadRequest("line %d is not a JSON object: send a JSON array of events or one JSON object a line", line)
		}
		if !json.Valid(text) {
			var v json.RawMessage
			return nil, BadRequest("line %d is not valid JSON (%v): send a JSON array of events or one JSON object a line",
				line, json.Unmarshal(text, &v))
		}
		items = append(items, json.RawMessage(text))
	}
	return items, nil
}

// postedEvent is an event as posted, for the common case where every field
// has its type; field names match as encoding/json matches them, ignoring
// case.
type postedEvent struct {
	ID         string   `json:"id"`
	Tenant     string   `json:"tenant"`
	Source     string   `json:"source"`
	User       string   `json:"user"`
	UserName   string   `json:"user_name"`
	Entity     string   `json:"entity"`
	Record     string   `json:"record"`
	RecordName string   `json:"record_name"`
	Action     string   `json:"action"`
	At         string   `json:"at"`
	Fields     []string `json:"fields"`
}

// postedNames are the JSON names of postedEvent's fields.
var postedNames = []string{"id", "tenant", "source", "user", "user_name", "entity", "record",
	"record_name", "action", "at", "fields"}

// readPosted reads a body of events whose fields all have their types, as
// a JSON array or NDJSON, in one pass and as encoding/json would; ok is
// false for a body it leaves to encoding/json (jsontext.Reader says which).
func readPosted(body []byte) (posted []postedEvent, ok bool) {
	trimmed := bytes.TrimSpace(body)
	r := jsontext.NewReader(trimmed)
	if r.Peek() == '[' {
		r.Array(func() {
			posted = append(posted, postedEvent{})
			posted[len(posted)-1].read(r)
		})
		return posted, r.End()
	}
	posted = make([]postedEvent, 0, bytes.Count(trimmed, []byte{'\n'})+1)
	for text := range bytes.Lines(trimmed) {
		if text = bytes.TrimSpace(text); len(text) == 0 {
			continue
		}
		r.Reset(text)
		posted = append(posted, postedEvent{})
		if posted[len(posted)-1].read(r); !r.End() {
			return nil, false
		}
	}
	return posted, len(posted) > 0
}

// read reads one event's object into p.
func (p *postedEvent) read(r *jsontext.Reader) {
	r.Object(func(name []byte) {
		switch string(name) {
		case "id":
			jsontext.String(r, &p.ID)
		case "tenant":
			jsontext.Interned(r, &p.Tenant)
		case "source":
			jsontext.Interned(r, &p.Source)
		case "user":
			jsontext.Interned(r, &p.User)
		case "user_name":
			jsontext.Interned(r, &p.UserName)
		case "entity":
			jsontext.Interned(r, &p.Entity)
		case "record":
			jsontext.String(r, &p.Record)
		case "record_name":
			jsontext.String(r, &p.RecordName)
		case "action":
			jsontext.Interned(r, &p.Action)
		case "at":
			jsontext.String(r, &p.At)
		case "fields":
			r.Strings(&p.Fields)
		default:
			r.Unknown(name, postedNames)
		}
	})
}

// event makes the canonical event of p, normalized and checked.
func (p *postedEvent) event(now time.Time) (crmpulse.Event, []crmpulse.FieldError) {
	e := crmpulse.Event{ID: p.ID, Tenant: p.Tenant, Source: p.Source, User: p.User, UserName: p.UserName,
		Entity: p.Entity, Record: p.Record, RecordName: p.RecordName, Action: crmpulse.Action(p.Action),
		Fields: p.Fields}
	return finish(e, p.At, nil, now)
}

// decodeEvent reads one posted event. An event whose fields all have their
// types is read in one pass; any other is read field by field, so that
// each bad field is named.
func decodeEvent(raw json.RawMessage, now time.Time) (crmpulse.Event, []crmpulse.FieldError) {
	var p postedEvent
	if err := json.Unmarshal(raw, &p); err != nil {
		return decodeFields(raw, now)
	}
	return p.event(now)
}

// decodeFields reads a posted event field by field, naming each bad one.
func decodeFields(raw json.RawMessage, now time.Time) (crmpulse.Event, []crmpulse.FieldError) {
	var e crmpulse.Event
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return e, []crmpulse.FieldError{{Field: "", Detail: "an event must be a JSON object"}}
	}
	// Names match ignoring case, as in decodeEvent's first pass.
	for k, v := range obj {
		if lower := strings.ToLower(k); lower != k {
			if _, ok := obj[lower]; !ok {
				obj[lower] = v
			}
		}
	}
	var errs []crmpulse.FieldError
	str := func(name string, dst *string) {
		v, ok := obj[name]
		if !ok || string(v) == "null" {
			return
		}
		if v[0] != '"' {
			errs = append(errs, crmpulse.FieldError{Field: name, Detail: "must be a string"})
			return
		}
		var err error
		if *dst, err = unquote(v); err != nil {
			errs = append(errs, crmpulse.FieldError{Field: name, Detail: "must be a string"})
		}
	}
	var action, at string
	str("id", &e.ID)
	str("tenant", &e.Tenant)
	str("source", &e.Source)
	str("user", &e.User)
	str("user_name", &e.UserName)
	str("entity", &e.Entity)
	str("record", &e.Record)
	str("record_name", &e.RecordName)
	str("action", &action)
	str("at", &at)
	e.Action = crmpulse.Action(action)
	if v, ok := obj["fields"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &e.Fields); err != nil {
			errs = append(errs, crmpulse.FieldError{Field: "fields", Detail: "must be an array of strings"})
		}
	}
	return finish(e, at, errs, now)
}

// finish reads the event's time, normalizes and validates it, and adds
// what is wrong to errs.
func finish(e crmpulse.Event, at string, errs []crmpulse.FieldError, now time.Time) (crmpulse.Event, []crmpulse.FieldError) {
	if at != "" {
		t, err := time.Parse(time.RFC3339Nano, at)
		switch {
		case err != nil:
			errs = append(errs, crmpulse.FieldError{Field: "at", Detail: fmt.Sprintf("%q is not an RFC 3339 time", at)})
		case t.IsZero():
			errs = append(errs, crmpulse.FieldError{Field: "at", Detail: "must be between 1970 and 9999"})
		}
		e.At = t
	}
	e.Normalize()
	for _, fe := range e.Validate(now) {
		if !hasField(errs, fe.Field) {
			errs = append(errs, fe)
		}
	}
	e.Received = now.UTC()
	return e, errs
}

func hasField(errs []crmpulse.FieldError, field string) bool {
	for _, fe := range errs {
		if strings.EqualFold(fe.Field, field) {
			return true
		}
	}
	return false
}
