// Package audit keeps the append-only record of who viewed or exported
// whose activity and who changed people, rules or tokens. Entries live in
// Badger under the prefix "audit/" and are also logged at Info with
// component=audit, so that a log shipper can keep them elsewhere.
package audit

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

const prefix = "audit/"

// Entry is one audited act.
type Entry struct {
	At time.Time `json:"at"`
	// Actor is the user's or the token's name; "anonymous" for a request
	// served without sign-in.
	Actor string `json:"actor"`
	// Via is how the actor was recognised: session, token or open.
	Via string `json:"via"`
	// Action is what was done: view, export, live, user.put, signin,
	// signin.failed, signout.
	Action string `json:"action"`
	// Subject is whose activity or which record: "everyone", "team=X",
	// "user=Y", "person=Z".
	Subject string `json:"subject,omitempty"`
	Route   string `json:"route,omitempty"`
	Remote  string `json:"remote,omitempty"`
}

// Log appends and lists entries. Its methods may be called concurrently;
// the caller owns db.
type Log struct {
	db     *badger.DB
	logger *slog.Logger
	seq    atomic.Uint64
}

// Open returns the audit log kept in db.
func Open(db *badger.DB, logger *slog.Logger) *Log {
	l := &Log{db: db, logger: logger.With("component", "audit")}
	l.seq.Store(uint64(time.Now().UnixNano()))
	return l
}

// Record appends e, stamping its time when zero. A failure to store is
// logged, not returned: the request it audits has already been served.
func (l *Log) Record(e Entry) {
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	l.logger.Info("audit", "actor", e.Actor, "via", e.Via, "action", e.Action,
		"subject", e.Subject, "route", e.Route, "remote", e.Remote)
	key := make([]byte, 0, len(prefix)+16)
	key = append(key, prefix...)
	key = binary.BigEndian.AppendUint64(key, uint64(e.At.UnixNano()))
	key = binary.BigEndian.AppendUint64(key, l.seq.Add(1))
	data, _ := json.Marshal(e)
	if err := l.db.Update(func(txn *badger.Txn) error { return txn.Set(key, data) }); err != nil {
		l.logger.Error("store audit entry", "err", err)
	}
}

// ErrBadCursor is returned for a cursor List did not give.
var ErrBadCursor = errors.New("audit: the cursor is not valid")

// List returns up to limit entries, newest first, after cursor (empty:
// from the newest), and the cursor of the next page ("" at the end).
func (l *Log) List(cursor string, limit int) ([]Entry, string, error) {
	start := append([]byte(prefix), 0xff)
	if cursor != "" {
		k, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(k) != len(prefix)+16 || string(k[:len(prefix)]) != prefix {
			return nil, "", ErrBadCursor
		}
		start = k
	}
	var out []Entry
	var last []byte
	next := ""
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), Reverse: true, PrefetchValues: true})
		defer it.Close()
		for it.Seek(start); it.ValidForPrefix([]byte(prefix)); it.Next() {
			k := it.Item().KeyCopy(nil)
			if cursor != "" && string(k) == string(start) {
				continue
			}
			if len(out) == limit {
				next = base64.RawURLEncoding.EncodeToString(last)
				return nil
			}
			var e Entry
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return fmt.Errorf("read audit entry: %w", err)
			}
			out = append(out, e)
			last = k
		}
		return nil
	})
	return out, next, err
}
