package alert

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Kinds of alert.
const (
	KindPersonInactive = "person_inactive"
	KindSourceSilent   = "source_silent"
)

// States of a (rule, person) or (rule, source) pair. A pair with no
// stored state is ok.
const (
	StateOK       = "ok"
	StatePending  = "pending"
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// PersonRef names the person an alert is about.
type PersonRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// DeliveryError is the latest failure to deliver a notification to one
// target; it is cleared when a delivery to that target succeeds.
type DeliveryError struct {
	Target   string    `json:"target"`
	Error    string    `json:"error"`
	At       time.Time `json:"at"`
	Attempts int       `json:"attempts"`
}

// State is one alert as GET /v1/alerts, the websocket and the webhook
// target show it.
type State struct {
	Rule           string          `json:"rule"`
	Kind           string          `json:"kind"`
	Person         *PersonRef      `json:"person"`
	Source         *string         `json:"source"`
	State          string          `json:"state"`
	Since          time.Time       `json:"since"`
	LastActivity   *time.Time      `json:"last_activity"`
	LastNotified   *time.Time      `json:"last_notified"`
	DeliveryErrors []DeliveryError `json:"delivery_errors"`
}

// subject is the person id or the source name the state is about.
func (s *State) subject() string {
	if s.Person != nil {
		return s.Person.ID
	}
	if s.Source != nil {
		return *s.Source
	}
	return ""
}

// key is the state's Badger key.
func (s *State) key() string { return stateKey(s.Rule, s.Kind, s.subject()) }

// delivery is a notification waiting to reach one target.
type delivery struct {
	Target   string    `json:"target"`
	Notice   State     `json:"notice"`
	Attempts int       `json:"attempts"`
	NextAt   time.Time `json:"next_at"`
}

// record is what is stored per pair: the state and its undelivered
// notifications, so a restart neither re-sends what went out nor drops
// what did not.
type record struct {
	State
	Outbox []delivery `json:"outbox,omitempty"`
}

// Badger key prefixes; the aggregate's prefixes are one byte long.
const (
	prefixState  = "alert/state/"
	prefixSource = "alert/source/"
	keyLearned   = "alert/sources-learned"
)

func stateKey(rule, kind, subject string) string {
	return prefixState + rule + "\x00" + kind + "\x00" + subject
}

// loadRecords reads every stored alert state.
func loadRecords(db *badger.DB) (map[string]*record, error) {
	out := map[string]*record{}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixState), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			rec := &record{}
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, rec) }); err != nil {
				return fmt.Errorf("read alert state %q: %w", it.Item().Key(), err)
			}
			out[string(it.Item().Key())] = rec
		}
		return nil
	})
	return out, err
}

// saveRecord stores rec, or deletes its key when rec is nil.
func saveRecord(db *badger.DB, key string, rec *record) error {
	return db.Update(func(txn *badger.Txn) error {
		if rec == nil {
			return txn.Delete([]byte(key))
		}
		data, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return txn.Set([]byte(key), data)
	})
}

// loadSources reads the sources seen so far with their latest event time,
// and whether they were learned from the whole state once.
func loadSources(db *badger.DB) (map[string]time.Time, bool, error) {
	out := map[string]time.Time{}
	learned := false
	err := db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get([]byte(keyLearned)); err == nil {
			learned = true
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixSource), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var t time.Time
			if err := it.Item().Value(func(v []byte) error { return t.UnmarshalText(v) }); err != nil {
				return fmt.Errorf("read source %q: %w", it.Item().Key(), err)
			}
			out[string(it.Item().Key()[len(prefixSource):])] = t
		}
		return nil
	})
	return out, learned, err
}

// saveSources stores the sources' latest event times.
func saveSources(db *badger.DB, sources map[string]time.Time, learned bool) error {
	return db.Update(func(txn *badger.Txn) error {
		for name, t := range sources {
			v, _ := t.MarshalText()
			if err := txn.Set([]byte(prefixSource+name), v); err != nil {
				return err
			}
		}
		if learned {
			return txn.Set([]byte(keyLearned), []byte{1})
		}
		return nil
	})
}
