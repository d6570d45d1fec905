// Package csvimport turns rows of a CSV export into canonical events and
// people, as a YAML mapping says, and reports each broken row by its line
// number.
package csvimport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/crmpulse/crmpulse"
)

// Mapping says how the rows of a history export become events. One row may
// give several events (created on one date, updated on another), or none
// where its dates are empty.
type Mapping struct {
	Tenant string `yaml:"tenant"`
	Source string `yaml:"source"`
	// Timezone is where dates without a time of day are midnight.
	Timezone string `yaml:"timezone"`
	// DateFormats are Go time layouts tried in order; RFC 3339 instants
	// are always accepted.
	DateFormats []string `yaml:"date_formats"`
	Entity      string   `yaml:"entity"`
	// EntityColumn, when set, names the column that holds the entity.
	EntityColumn string `yaml:"entity_column"`
	Record       string `yaml:"record"`
	// RecordName lists the columns that make up a record's display name,
	// joined with " · " and skipping empty ones.
	RecordName []string      `yaml:"record_name"`
	Events     []EventColumn `yaml:"events"`

	loc *time.Location
}

// EventColumn maps the columns of one event a row may carry.
type EventColumn struct {
	Action crmpulse.Action `yaml:"action"`
	User   string          `yaml:"user"`
	At     string          `yaml:"at"`
	// Fields lists field names the event changed.
	Fields []string `yaml:"fields"`
}

// LoadMapping reads and checks a mapping file.
func LoadMapping(path string) (*Mapping, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read mapping: %w", err)
	}
	var m Mapping
	if err := decodeStrict(data, &m); err != nil {
		return nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	return &m, nil
}

// decodeStrict reads a YAML mapping, refusing a key it does not know by
// name and line, so that a misspelt one is not silently left out.
func decodeStrict(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

func (m *Mapping) check() error {
	if m.Timezone == "" {
		m.Timezone = "UTC"
	}
	loc, err := time.LoadLocation(m.Timezone)
	if err != nil {
		return fmt.Errorf("timezone: %q is not an IANA time zone name", m.Timezone)
	}
	m.loc = loc
	if m.Entity == "" && m.EntityColumn == "" {
		return fmt.Errorf("entity or entity_column is required")
	}
	if m.Record == "" {
		return fmt.Errorf("record: name the column that holds the record id")
	}
	if len(m.Events) == 0 {
		return fmt.Errorf("events: list at least one event a row gives")
	}
	for i, ev := range m.Events {
		if ev.Action.Index() < 0 {
			return fmt.Errorf("events[%d].action: %q must be created, updated, deleted or restored", i, ev.Action)
		}
		if ev.User == "" || ev.At == "" {
			return fmt.Errorf("events[%d]: user and at name the columns of the acting user and the time", i)
		}
	}
	return nil
}

// columns lists every column the mapping reads.
func (m *Mapping) columns() []string {
	cols := []string{m.Record}
	if m.EntityColumn != "" {
		cols = append(cols, m.EntityColumn)
	}
	cols = append(cols, m.RecordName...)
	for _, ev := range m.Events {
		cols = append(cols, ev.User, ev.At)
	}
	return cols
}

// parseTime reads a time column: an RFC 3339 instant, or a layout of
// DateFormats in the mapping's zone.
func (m *Mapping) parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	layouts := m.DateFormats
	if len(layouts) == 0 {
		layouts = []string{time.DateOnly, time.DateTime}
	}
	for _, layout := range layouts {
		if t, err := time.ParseInLocation(layout, s, m.loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date or time (want %s or RFC 3339)", s, strings.Join(layouts, ", "))
}
