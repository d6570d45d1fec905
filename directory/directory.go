// Package directory keeps the people a report is about, and maps the user
// ids of each source to them. It lives in Badger beside the state and is
// held in memory, since reports read it on every request.
package directory

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/config"
)

// prefix keeps people apart from the aggregate's one-byte prefixes in the
// same Badger database; it must not start with one of them.
const prefix = "directory/person/"

// Directory is a crmpulse.Directory backed by Badger. Its methods may be
// called concurrently.
type Directory struct {
	db     *badger.DB
	logger *slog.Logger

	mu     sync.RWMutex
	people map[string]crmpulse.Person
	order  []string
	// ids maps source + "\x00" + user id to a person id.
	ids map[string]string
	// publish, when set, shares each Put with the other nodes (shared.go).
	publish func(crmpulse.Person) error
}

var _ crmpulse.Directory = (*Directory)(nil)

// Open loads the directory from db; the caller owns db.
func Open(db *badger.DB, logger *slog.Logger) (*Directory, error) {
	d := &Directory{db: db, logger: logger.With("component", "directory"), people: map[string]crmpulse.Person{}}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var p crmpulse.Person
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &p) }); err != nil {
				return fmt.Errorf("read person %s: %w", it.Item().Key(), err)
			}
			d.people[p.ID] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load directory: %w", err)
	}
	d.reindex()
	return d, nil
}

// reindex rebuilds the order and the id map; the caller holds mu.
func (d *Directory) reindex() {
	d.order = d.order[:0]
	d.ids = map[string]string{}
	for id, p := range d.people {
		d.order = append(d.order, id)
		for source, user := range p.IDs {
			d.ids[source+"\x00"+user] = id
		}
	}
	slices.SortFunc(d.order, func(a, b string) int {
		return strings.Compare(strings.ToLower(d.people[a].Name+a), strings.ToLower(d.people[b].Name+b))
	})
}

// People returns every person, ordered by name.
func (d *Directory) People() []crmpulse.Person {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]crmpulse.Person, len(d.order))
	for i, id := range d.order {
		out[i] = d.people[id]
	}
	return out
}

// Get returns the person with the id.
func (d *Directory) Get(id string) (crmpulse.Person, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	p, ok := d.people[id]
	return p, ok
}

// Resolve returns the person user acts as in source.
func (d *Directory) Resolve(source, user string) (string, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if id, ok := d.ids[source+"\x00"+user]; ok {
		return id, true
	}
	if _, ok := d.people[user]; ok {
		return user, true
	}
	return "", false
}

// Validate lists what is wrong with p.
func Validate(p *crmpulse.Person) []crmpulse.FieldError {
	var errs []crmpulse.FieldError
	bad := func(field, detail string) {
		errs = append(errs, crmpulse.FieldError{Field: field, Detail: detail})
	}
	if strings.TrimSpace(p.ID) == "" {
		bad("id", "required")
	}
	switch p.Status {
	case "", crmpulse.StatusActive, crmpulse.StatusDeactivated, crmpulse.StatusLeft:
	default:
		bad("status", "must be active, deactivated or left")
	}
	if p.Timezone != "" {
		if _, err := time.LoadLocation(p.Timezone); err != nil {
			bad("timezone", "not an IANA time zone name")
		}
	}
	if p.Calendar != nil {
		// Fields left out take the default calendar's values, so only
		// what is set is checked here.
		anyHours := &crmpulse.Calendar{WorkingHours: "00:00-23:59"}
		if _, err := config.ParseCalendar(p.Calendar, anyHours, time.UTC); err != nil {
			field, detail, _ := strings.Cut(err.Error(), ": ")
			bad("calendar."+field, detail)
		}
	}
	return errs
}

// Put stores p, replacing the person with the same id; it keeps the time
// the person first entered the directory.
func (d *Directory) Put(p crmpulse.Person, now time.Time) error {
	if p.Status == "" {
		p.Status = crmpulse.StatusActive
	}
	if p.Name == "" {
		p.Name = p.ID
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.people[p.ID]; ok && !old.Added.IsZero() {
		p.Added = old.Added
	} else {
		p.Added = now.UTC()
	}
	if d.publish != nil {
		if err := d.publish(p); err != nil {
			return fmt.Errorf("share person: %w", err)
		}
	}
	return d.storeLocked(p)
}

// storeLocked writes p to Badger and memory; the caller holds mu.
func (d *Directory) storeLocked(p crmpulse.Person) error {
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode person: %w", err)
	}
	if err := d.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(prefix+p.ID), data) }); err != nil {
		return fmt.Errorf("store person: %w", err)
	}
	d.people[p.ID] = p
	d.reindex()
	return nil
}
