package csvimport

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/crmpulse/crmpulse"
)

// PeopleMapping names the roster columns of each field of a person; empty
// means the roster does not have it. Status and StatusSince may instead be
// fixed values for every row.
type PeopleMapping struct {
	ID       string `yaml:"id"`
	Name     string `yaml:"name"`
	Email    string `yaml:"email"`
	Team     string `yaml:"team"`
	Manager  string `yaml:"manager"`
	Office   string `yaml:"office"`
	Timezone string `yaml:"timezone"`
	Status   string `yaml:"status"`
	// StatusSince is a column, or a fixed RFC 3339 instant or date.
	StatusSince string `yaml:"status_since"`
	// IDs maps a source to the column with the person's user id in it.
	IDs map[string]string `yaml:"ids"`
}

// LoadPeopleMapping reads and checks a roster mapping file.
func LoadPeopleMapping(path string) (*PeopleMapping, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read mapping: %w", err)
	}
	var m PeopleMapping
	if err := decodeStrict(data, &m); err != nil {
		return nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	if m.ID == "" {
		return nil, fmt.Errorf("mapping %s: id: name the column that holds each person's id", path)
	}
	return &m, nil
}

// ReadPeople reads a roster. Rows without an id are listed as broken.
func ReadPeople(r io.Reader, m *PeopleMapping) ([]crmpulse.Person, Summary, error) {
	var sum Summary
	cr := newReader(r)
	h, err := readHeader(cr, []string{m.ID})
	if err != nil {
		return nil, sum, err
	}
	var people []crmpulse.Person
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return people, sum, fmt.Errorf("read csv: %w", err)
		}
		sum.Rows++
		line, _ := cr.FieldPos(0)
		p, lerr := m.person(h, row, line)
		if lerr != nil {
			sum.Broken = append(sum.Broken, *lerr)
			continue
		}
		people = append(people, p)
	}
	return people, sum, nil
}

func (m *PeopleMapping) person(h header, row []string, line int) (crmpulse.Person, *LineError) {
	col := func(c string) string {
		if c == "" {
			return ""
		}
		return h.get(row, c)
	}
	p := crmpulse.Person{
		ID: col(m.ID), Name: col(m.Name), Team: col(m.Team), Manager: col(m.Manager),
		Office: col(m.Office), Timezone: col(m.Timezone), Status: m.Status, IDs: map[string]string{},
	}
	if p.ID == "" {
		return p, &LineError{Line: line, Field: m.ID, Detail: "the person's id is empty"}
	}
	if _, isCol := h[m.Status]; isCol {
		p.Status = col(m.Status)
	}
	if e := col(m.Email); e != "" {
		p.Email = &e
	}
	since := m.StatusSince
	if _, isCol := h[since]; isCol {
		since = col(since)
	}
	if since != "" {
		t, err := time.Parse(time.RFC3339, since)
		if err != nil {
			t, err = time.Parse(time.DateOnly, since)
		}
		if err != nil {
			return p, &LineError{Line: line, Field: "status_since", Detail: fmt.Sprintf("%q is not a date or RFC 3339 instant", since)}
		}
		p.StatusSince = &t
	}
	for source, c := range m.IDs {
		if v := col(c); v != "" {
			p.IDs[source] = v
		}
	}
	return p, nil
}
