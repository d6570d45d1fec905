package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/crmpulse/crmpulse"
)

// DecodeEvents reads canonical events posted as a JSON array or as NDJSON
// (one object a line). A body that is not JSON at all is an *Error 400. An
// event with bad fields is left out of the result, and each of its problems
// is listed by index; the events and problems are in the order received.
func DecodeEvents(body []byte, now time.Time) ([]crmpulse.Event, []int, []crmpulse.FieldError, error) {
	raws, err := splitItems(body)
	if err != nil {
		return nil, nil, nil, err
	}
	var (
		events  []crmpulse.Event
		indexes []int
		errs    []crmpulse.FieldError
	)
	for i, raw := range raws {
		e, bad := decodeEvent(raw, now)
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
	sc := bufio.NewScanner(bytes.NewReader(trimmed))
	sc.Buffer(nil, len(trimmed)+1)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		if text[0] != '{' || !json.Valid(text) {
			return nil, BadRequest("line %d is not a JSON object: send a JSON array of events or one JSON object a line", line)
		}
		items = append(items, json.RawMessage(bytes.Clone(text)))
	}
	return items, nil
}

// decodeEvent reads one posted event field by field, so that each bad field
// is named.
func decodeEvent(raw json.RawMessage, now time.Time) (crmpulse.Event, []crmpulse.FieldError) {
	var e crmpulse.Event
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return e, []crmpulse.FieldError{{Field: "", Detail: "an event must be a JSON object"}}
	}
	var errs []crmpulse.FieldError
	str := func(name string, dst *string) {
		v, ok := obj[name]
		if !ok || string(v) == "null" {
			return
		}
		if err := json.Unmarshal(v, dst); err != nil {
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
