// Package aggregate holds the stream workers' state: every event applied
// once, by its identity, to the per-user counters, distinct-record sets and
// the transaction index, with the log position written in the same Badger
// transaction as the state it produced. Badger is the truth; an in-memory
// index built from it answers reports.
package aggregate

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/crmpulse/crmpulse"
)

// Key prefixes in Badger. The directory and other components use their own
// prefixes of more than one byte.
const (
	prefixPosition = 'p' // partition -> last applied offset
	prefixSeen     = 'e' // event key -> transaction key
	prefixTx       = 'x' // time, event key -> event JSON
)

// Store applies events to the state and answers queries over it. Apply is
// called by one worker goroutine per partition; queries may run
// concurrently with it.
type Store struct {
	db     *badger.DB
	logger *slog.Logger

	mu        sync.RWMutex
	index     *index
	positions map[int32]int64
}

// Open loads the state kept in db. The caller owns db and closes it after
// the store is no longer used.
func Open(db *badger.DB, logger *slog.Logger) (*Store, error) {
	s := &Store{db: db, logger: logger.With("component", "aggregate"), index: newIndex(), positions: map[int32]int64{}}
	err := db.View(func(txn *badger.Txn) error {
		if err := s.loadPositions(txn); err != nil {
			return err
		}
		return s.loadTransactions(txn)
	})
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	s.logger.Info("state loaded", "events", s.index.events, "partitions", len(s.positions))
	return s, nil
}

func (s *Store) loadPositions(txn *badger.Txn) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixPosition}})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		err := it.Item().Value(func(v []byte) error {
			s.positions[int32(binary.BigEndian.Uint32(k[1:]))] = int64(binary.BigEndian.Uint64(v))
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) loadTransactions(txn *badger.Txn) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixTx}, PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		var e crmpulse.Event
		if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
			return fmt.Errorf("read transaction %x: %w", it.Item().Key(), err)
		}
		s.index.add(&e)
	}
	return nil
}

// Events returns how many events the state holds.
func (s *Store) Events() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.index.events
}

// Resume returns the offset of the first record of partition not yet
// applied; it is a crmpulse.ResumeFunc.
func (s *Store) Resume(partition int32) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if off, ok := s.positions[partition]; ok {
		return off + 1
	}
	return 0
}

// Apply applies a batch of records of one partition and returns the events
// that were new. Records at or before the partition's committed position,
// and events whose identity was applied before, change nothing. The
// position and the state are committed in one Badger transaction, so a
// crash at any point leaves both as they were or both applied.
func (s *Store) Apply(ctx context.Context, batch []crmpulse.Record) ([]crmpulse.Event, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	part := batch[0].Partition
	s.mu.RLock()
	committed, known := s.positions[part]
	s.mu.RUnlock()

	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	var fresh []crmpulse.Event
	inBatch := make(map[string]struct{}, len(batch))
	last := committed
	for i := range batch {
		r := &batch[i]
		if known && r.Offset <= committed {
			continue
		}
		last = r.Offset
		key := r.Event.Key()
		if _, dup := inBatch[key]; dup {
			continue
		}
		inBatch[key] = struct{}{}
		isNew, err := s.stage(txn, &r.Event, key)
		if errors.Is(err, badger.ErrTxnTooBig) {
			// Commit what fits with the position reached so far; the
			// rest goes in a new transaction.
			if err := s.commit(txn, part, batch[i-1].Offset); err != nil {
				return nil, err
			}
			txn = s.db.NewTransaction(true)
			isNew, err = s.stage(txn, &r.Event, key)
		}
		if err != nil {
			return nil, err
		}
		if isNew {
			fresh = append(fresh, r.Event)
		}
	}
	if err := s.commit(txn, part, last); err != nil {
		return nil, err
	}

	s.mu.Lock()
	for i := range fresh {
		s.index.add(&fresh[i])
	}
	s.positions[part] = last
	s.mu.Unlock()
	return fresh, nil
}

// stage writes e into txn unless its key was applied before.
func (s *Store) stage(txn *badger.Txn, e *crmpulse.Event, key string) (bool, error) {
	seen := append([]byte{prefixSeen}, key...)
	_, err := txn.Get(seen)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, badger.ErrKeyNotFound) {
		return false, fmt.Errorf("look up event: %w", err)
	}
	data, err := json.Marshal(e)
	if err != nil {
		return false, fmt.Errorf("encode event: %w", err)
	}
	tx := txKey(e, key)
	if err := txn.Set(seen, tx); err != nil {
		return false, err
	}
	return true, txn.Set(tx, data)
}

func (s *Store) commit(txn *badger.Txn, part int32, offset int64) error {
	k := binary.BigEndian.AppendUint32([]byte{prefixPosition}, uint32(part))
	if err := txn.Set(k, binary.BigEndian.AppendUint64(nil, uint64(offset))); err != nil {
		return fmt.Errorf("stage position: %w", err)
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("commit state: %w", err)
	}
	return nil
}

// txKey orders transactions by event time: the prefix, the time as a
// sortable 8-byte number, then the event key.
func txKey(e *crmpulse.Event, key string) []byte {
	k := make([]byte, 0, 9+len(key))
	k = append(k, prefixTx)
	k = binary.BigEndian.AppendUint64(k, sortableTime(e.At.UnixNano()))
	return append(k, key...)
}

func sortableTime(ns int64) uint64 { return uint64(ns) ^ (1 << 63) }
