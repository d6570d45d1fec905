// Package debezium decodes one Debezium change record (a Kafka record's key
// and value, JSON with or without schemas) into at most one canonical event,
// by a per-table mapping: Debezium knows tables, not CRM users or entities.
package debezium

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest"
)

// Source is the canonical source name of Debezium events.
const Source = "debezium"

// ErrNoTable is returned for a record of a table the configuration does not
// map.
var ErrNoTable = errors.New("debezium: no mapping for the table")

// Table maps one table's rows to events. Column names refer to the row in
// after. The koanf tags are the keys of the configuration file.
type Table struct {
	// Entity is the entity every row is (lead, opportunity, ...).
	Entity string `koanf:"entity"`
	// Tenant overrides the tenant, which is otherwise source.name.
	Tenant string `koanf:"tenant"`
	// Key is the key field that holds the record id; empty means the key's
	// only field.
	Key string `koanf:"key"`
	// Name is the column that holds the record's name, if any.
	Name string `koanf:"name"`
	// CreatedBy and UpdatedBy are the columns that name the acting user of a
	// create and of an update. A delete is unattributed.
	CreatedBy string `koanf:"created_by"`
	UpdatedBy string `koanf:"updated_by"`
	// CreatedAt and UpdatedAt are the columns that time a create and an
	// update; empty, or null in the row, means source.ts_us (else ts_ms).
	CreatedAt string `koanf:"created_at"`
	UpdatedAt string `koanf:"updated_at"`
	// TimeUnit is the unit of those columns: "ms", "us" (the default,
	// Debezium's MicroTimestamp) or "iso" (ZonedTimestamp).
	TimeUnit string `koanf:"time_unit"`
}

// Config maps tables, keyed by topic (crm.public.leads) or by schema.table
// (public.leads).
type Config struct {
	Tables map[string]Table
}

// Decoder decodes Debezium records. It is safe for concurrent use.
type Decoder struct {
	cfg Config
}

// New returns a decoder for the configured tables.
func New(cfg Config) *Decoder {
	return &Decoder{cfg: cfg}
}

type envelope struct {
	Op     string                     `json:"op"`
	Before map[string]json.RawMessage `json:"before"`
	After  map[string]json.RawMessage `json:"after"`
	Source struct {
		Name   string      `json:"name"`
		Schema string      `json:"schema"`
		Table  string      `json:"table"`
		TsMs   ingest.Text `json:"ts_ms"`
		TsUs   ingest.Text `json:"ts_us"`
	} `json:"source"`
}

var ops = map[string]crmpulse.Action{"c": crmpulse.Created, "u": crmpulse.Updated, "d": crmpulse.Deleted}

// Decode returns the record's event, or nil for a tombstone, a snapshot
// read (r), a truncate (t) or a message (m). A record it cannot read is an
// error; one of an unmapped table wraps ErrNoTable.
func (d *Decoder) Decode(topic string, key, value []byte, now time.Time) (*crmpulse.Event, error) {
	value = payload(value)
	if len(value) == 0 || string(value) == "null" {
		return nil, nil // a tombstone: its delete was counted from the d
	}
	var env envelope
	if err := ingest.DecodeJSON(value, &env); err != nil {
		return nil, err
	}
	action, ok := ops[env.Op]
	if !ok {
		return nil, nil
	}
	table, ok := d.cfg.Tables[topic]
	if !ok {
		table, ok = d.cfg.Tables[env.Source.Schema+"."+env.Source.Table]
	}
	if !ok {
		return nil, fmt.Errorf("%w: topic %q, table %s.%s", ErrNoTable, topic, env.Source.Schema, env.Source.Table)
	}

	record, err := recordID(payload(key), table.Key, env)
	if err != nil {
		return nil, ingest.BadRequest("key: %v", err)
	}
	e := crmpulse.Event{
		Tenant: table.Tenant, Source: Source, Entity: table.Entity,
		Record: record, Action: action, RecordName: text(env.After[table.Name]),
	}
	if e.Tenant == "" {
		e.Tenant = env.Source.Name
	}
	userColumn, timeColumn := table.CreatedBy, table.CreatedAt
	if action == crmpulse.Updated {
		userColumn, timeColumn = table.UpdatedBy, table.UpdatedAt
		e.Fields = changed(env.Before, env.After)
	}
	if action != crmpulse.Deleted {
		e.User = text(env.After[userColumn])
	}
	if e.At, err = eventTime(env, timeColumn, table.TimeUnit); err != nil {
		return nil, ingest.BadRequest("time: %v", err)
	}
	if errs := ingest.Invalid(&e, now); errs != nil {
		return nil, ingest.BadRequest("%s: %s", errs[0].Field, errs[0].Detail)
	}
	return &e, nil
}

// payload unwraps {"schema": ..., "payload": ...} as written with
// schemas.enable=true.
func payload(b []byte) []byte {
	var wrapped struct {
		Schema  json.RawMessage `json:"schema"`
		Payload json.RawMessage `json:"payload"`
	}
	b = bytes.TrimSpace(b)
	if json.Unmarshal(b, &wrapped) == nil && wrapped.Schema != nil && wrapped.Payload != nil {
		return bytes.TrimSpace(wrapped.Payload)
	}
	return b
}

// recordID reads the key field (the key's only field when none is named),
// falling back to the row for a table without a key.
func recordID(key []byte, field string, env envelope) (string, error) {
	var k map[string]json.RawMessage
	if len(key) > 0 && string(key) != "null" {
		if err := ingest.DecodeJSON(key, &k); err != nil {
			return "", err
		}
	}
	if field == "" && len(k) == 1 {
		for f := range k {
			field = f
		}
	}
	for _, row := range []map[string]json.RawMessage{k, env.After, env.Before} {
		if id := text(row[field]); id != "" {
			return id, nil
		}
	}
	return "", fmt.Errorf("no record id in key field %q", field)
}

// eventTime reads the mapped column of the row, else source.ts_us, else
// source.ts_ms; the connector's own ts_ms (processing time) is never used.
func eventTime(env envelope, column, unit string) (time.Time, error) {
	if v := text(env.After[column]); column != "" && v != "" {
		switch unit {
		case "ms":
			return ingest.Millis(v)
		case "iso":
			return ingest.ParseISO(v)
		case "", "us":
			return ingest.Epoch(v, time.Microsecond)
		default:
			return time.Time{}, fmt.Errorf("unknown time unit %q", unit)
		}
	}
	if env.Source.TsUs != "" {
		return ingest.Epoch(string(env.Source.TsUs), time.Microsecond)
	}
	return ingest.Millis(string(env.Source.TsMs))
}

// changed lists the columns present in both rows whose values differ; with
// no before row (REPLICA IDENTITY DEFAULT) none are known.
func changed(before, after map[string]json.RawMessage) []string {
	var fields []string
	for k, b := range before {
		if a, ok := after[k]; ok && !ingest.SameJSON(a, b) {
			fields = append(fields, k)
		}
	}
	slices.Sort(fields)
	return fields
}

// text is a JSON string or number as text; "" for null, absent or other.
func text(raw json.RawMessage) string {
	var t ingest.Text
	if json.Unmarshal(raw, &t) != nil {
		return ""
	}
	return string(t)
}
