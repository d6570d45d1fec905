package aggregate

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/crmpulse/crmpulse"
)

// Transaction is one item of GET /v1/transactions: an event with the
// person it counts for.
type Transaction struct {
	ID         string          `json:"id"`
	At         time.Time       `json:"at"`
	Tenant     string          `json:"tenant"`
	Source     string          `json:"source"`
	Person     *string         `json:"person"`
	User       string          `json:"user"`
	UserName   string          `json:"user_name,omitempty"`
	Entity     string          `json:"entity"`
	Record     string          `json:"record"`
	RecordName string          `json:"record_name,omitempty"`
	Action     crmpulse.Action `json:"action"`
	Fields     []string        `json:"fields"`
	Origin     string          `json:"origin,omitempty"`
}

// NewTransaction describes e for the transaction table.
func NewTransaction(e *crmpulse.Event, dir crmpulse.Directory) Transaction {
	t := Transaction{
		ID: e.Identity(), At: e.At.UTC(), Tenant: e.Tenant, Source: e.Source,
		User: e.User, UserName: e.UserName, Entity: e.Entity, Record: e.Record,
		RecordName: e.RecordName, Action: e.Action, Fields: e.Fields, Origin: e.Origin,
	}
	if t.Fields == nil {
		t.Fields = []string{}
	}
	if id, status := RowID(dir, e.Source, e.User); status == "" {
		t.Person = &id
	}
	return t
}

// ErrBadCursor is returned for a cursor this server did not hand out.
var ErrBadCursor = fmt.Errorf("cursor is not one this server handed out")

// ErrCursorPeriod is returned for a cursor of a page outside the query's
// period: of another period, or of this one before its bounds moved.
var ErrCursorPeriod = fmt.Errorf("cursor is from a page outside this period; ask for the first page again")

// Transactions returns up to limit transactions of q, newest first, after
// the cursor a previous page returned, and the cursor of the next page (""
// at the end).
func (s *Store) Transactions(q Query, dir crmpulse.Directory, cursor string, limit int) ([]Transaction, string, error) {
	var items []Transaction
	next, err := s.scan(q, dir, cursor, func(t Transaction) bool {
		items = append(items, t)
		return len(items) < limit
	})
	return items, next, err
}

// EachTransaction calls visit for every transaction of q, newest first,
// until visit returns false.
func (s *Store) EachTransaction(q Query, dir crmpulse.Directory, visit func(Transaction) bool) error {
	_, err := s.scan(q, dir, "", visit)
	return err
}

// CheckCursor says whether cursor is "" (the first page) or one this
// server handed out for a page of q's period: ErrBadCursor or
// ErrCursorPeriod if not.
func CheckCursor(q Query, cursor string) error {
	if cursor == "" {
		return nil
	}
	_, err := cursorKey(q, cursor)
	return err
}

// cursorKey returns the transaction key a cursor names.
func cursorKey(q Query, cursor string) ([]byte, error) {
	k, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(k) < 9 || k[0] != prefixTx {
		return nil, ErrBadCursor
	}
	if at := binary.BigEndian.Uint64(k[1:9]); at < sortableTime(q.Bounds.From.UnixNano()) || at > sortableTime(q.Bounds.To.UnixNano()) {
		return nil, ErrCursorPeriod
	}
	return k, nil
}

func (s *Store) scan(q Query, dir crmpulse.Directory, cursor string, visit func(Transaction) bool) (string, error) {
	// Keys sort by time; iterate backwards from the period's end.
	start := binary.BigEndian.AppendUint64([]byte{prefixTx}, sortableTime(q.Bounds.To.UnixNano()))
	if cursor != "" {
		k, err := cursorKey(q, cursor)
		if err != nil {
			return "", err
		}
		start = k
	}
	people := map[string]crmpulse.Person{}
	for _, p := range dir.People() {
		people[p.ID] = p
	}
	var next string
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixTx}, Reverse: true, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		fromKey := sortableTime(q.Bounds.From.UnixNano())
		for it.Seek(start); it.Valid(); it.Next() {
			k := it.Item().Key()
			if cursor != "" && string(k) == string(start) {
				continue
			}
			if binary.BigEndian.Uint64(k[1:9]) < fromKey {
				break
			}
			if it.Item().ValueSize() == 0 {
				continue // past the transactions' retention
			}
			var e crmpulse.Event
			if err := it.Item().Value(func(v []byte) error { return decodeEvent(v, &e) }); err != nil {
				return fmt.Errorf("read transaction: %w", err)
			}
			if !q.Bounds.Contains(e.At) || !q.matchEvent(&e, dir, people) {
				continue
			}
			if !visit(NewTransaction(&e, dir)) {
				next = base64.RawURLEncoding.EncodeToString(k)
				return nil
			}
		}
		return nil
	})
	return next, err
}

// matchEvent applies q's filters to one event.
func (q *Query) matchEvent(e *crmpulse.Event, dir crmpulse.Directory, people map[string]crmpulse.Person) bool {
	if !q.matchSeries(seriesKey{e.Tenant, e.Source, e.User, e.Entity}) ||
		(q.Action != "" && string(e.Action) != q.Action) {
		return false
	}
	if q.User == "" && q.Team == "" && q.Office == "" {
		return true
	}
	id, _ := RowID(dir, e.Source, e.User)
	if q.User != "" && id != q.User {
		return false
	}
	p, ok := people[id]
	return (q.Team == "" || ok && strings.EqualFold(p.Team, q.Team)) &&
		(q.Office == "" || ok && strings.EqualFold(p.Office, q.Office))
}

// Matches reports whether e falls in q's period and passes its filters.
func (q *Query) Matches(e *crmpulse.Event, dir crmpulse.Directory) bool {
	if !q.Bounds.Contains(e.At) {
		return false
	}
	people := map[string]crmpulse.Person{}
	if q.Team != "" || q.Office != "" {
		for _, p := range dir.People() {
			people[p.ID] = p
		}
	}
	return q.matchEvent(e, dir, people)
}
