package csvimport

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/crmpulse/crmpulse"
)

// LineError is a broken row: its line in the file and what is wrong.
type LineError struct {
	Line   int    `json:"line"`
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

func (e LineError) Error() string {
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Detail)
}

// Summary counts what a read made of a file.
type Summary struct {
	Rows int
	// Events is how many events the good rows gave.
	Events int
	// NoEvents counts rows that give no event (no date at all).
	NoEvents int
	Broken   []LineError
}

// header maps column names to their positions.
type header map[string]int

func readHeader(r *csv.Reader, want []string) (header, error) {
	names, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("line 1: cannot read the header: %w", err)
	}
	h := header{}
	for i, n := range names {
		h[strings.TrimSpace(strings.TrimPrefix(n, "\ufeff"))] = i
	}
	for _, c := range want {
		if _, ok := h[c]; !ok {
			return nil, fmt.Errorf("line 1: the header has no column %q", c)
		}
	}
	return h, nil
}

func (h header) get(row []string, col string) string {
	if i, ok := h[col]; ok && i < len(row) {
		return strings.TrimSpace(row[i])
	}
	return ""
}

// newReader returns a CSV reader that tolerates rows of varying length, so
// that a short row is reported by line rather than ending the read.
func newReader(r io.Reader) *csv.Reader {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	return cr
}

// ReadEvents reads the CSV from r and hands events to emit in batches of
// up to batch. A broken row is listed in the summary and skipped; an error
// is returned only when the file cannot be read at all or emit fails.
func ReadEvents(r io.Reader, m *Mapping, batch int, emit func([]crmpulse.Event) error) (Summary, error) {
	var sum Summary
	cr := newReader(r)
	h, err := readHeader(cr, m.columns())
	if err != nil {
		return sum, err
	}
	pending := make([]crmpulse.Event, 0, batch)
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var parseErr *csv.ParseError
		if errors.As(err, &parseErr) {
			sum.Rows++
			sum.Broken = append(sum.Broken, LineError{Line: parseErr.StartLine, Field: "", Detail: parseErr.Err.Error()})
			continue
		}
		if err != nil {
			return sum, fmt.Errorf("read csv: %w", err)
		}
		sum.Rows++
		line, _ := cr.FieldPos(0)
		events, lerr := m.rowEvents(h, row, line)
		if lerr != nil {
			sum.Broken = append(sum.Broken, *lerr)
			continue
		}
		if len(events) == 0 {
			sum.NoEvents++
			continue
		}
		sum.Events += len(events)
		pending = append(pending, events...)
		if len(pending) >= batch {
			if err := emit(pending); err != nil {
				return sum, err
			}
			pending = pending[:0]
		}
	}
	if len(pending) > 0 {
		if err := emit(pending); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// rowEvents makes the events of one row.
func (m *Mapping) rowEvents(h header, row []string, line int) ([]crmpulse.Event, *LineError) {
	bad := func(field, format string, args ...any) *LineError {
		return &LineError{Line: line, Field: field, Detail: fmt.Sprintf(format, args...)}
	}
	record := h.get(row, m.Record)
	if record == "" {
		return nil, bad(m.Record, "the record id is empty")
	}
	entity := m.Entity
	if m.EntityColumn != "" {
		entity = strings.ToLower(h.get(row, m.EntityColumn))
	}
	var name []string
	for _, c := range m.RecordName {
		if v := h.get(row, c); v != "" {
			name = append(name, v)
		}
	}
	var events []crmpulse.Event
	for _, ev := range m.Events {
		raw := h.get(row, ev.At)
		if raw == "" {
			continue // this row does not carry this event
		}
		at, err := m.parseTime(raw)
		if err != nil {
			return nil, bad(ev.At, "%v", err)
		}
		user := h.get(row, ev.User)
		if user == "" {
			return nil, bad(ev.User, "the acting user is empty")
		}
		e := crmpulse.Event{
			Tenant: m.Tenant, Source: m.Source, User: user, Entity: entity,
			Record: record, RecordName: strings.Join(name, " · "), Action: ev.Action,
			Fields: ev.Fields, At: at,
		}
		e.Normalize()
		if errs := e.Validate(time.Now()); len(errs) > 0 {
			return nil, bad(errs[0].Field, "%s", errs[0].Detail)
		}
		events = append(events, e)
	}
	return events, nil
}
