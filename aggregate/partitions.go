package aggregate

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// ErrNotOwned is returned for a partition whose state is not open here.
var ErrNotOwned = errors.New("aggregate: partition not owned")

// Partitions keeps the state of each log partition in a Store of its own,
// with a Badger of its own under dir/p-N: the unit of work of the
// many-process shape. A partition's state is exact on its own, since the log
// is partitioned by tenant, source and user, so every series, every record's
// touches and every event identity live in one partition; reports of
// several partitions add up.
//
// Open makes a partition's state available (from what dir already holds of
// it, else empty, to be replayed from offset 0); Close puts it away and
// keeps its files, so that a later Open resumes from its committed
// position; Drop deletes them. The methods may be called concurrently.
// A query runs under View, which holds the partition open until it returns.
type Partitions struct {
	dir    string
	logger *slog.Logger

	mu    sync.RWMutex
	parts map[int32]*partition
}

type partition struct {
	mu    sync.RWMutex // held for reading by View, for writing by Close
	db    *badger.DB
	store *Store
}

// OpenPartitions returns the set of partition states kept under dir, with
// none open. The caller calls CloseAll when done.
func OpenPartitions(dir string, logger *slog.Logger) (*Partitions, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	return &Partitions{dir: dir, logger: logger.With("component", "partitions"), parts: map[int32]*partition{}}, nil
}

// Dir returns the Badger directory of partition p.
func (ps *Partitions) Dir(p int32) string { return filepath.Join(ps.dir, fmt.Sprintf("p-%d", p)) }

// Open opens partition p's state and returns its store; opening an open
// partition returns its store.
func (ps *Partitions) Open(p int32) (*Store, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if pt := ps.parts[p]; pt != nil {
		return pt.store, nil
	}
	db, err := badger.Open(partitionOptions(ps.Dir(p)))
	if err != nil {
		return nil, fmt.Errorf("open state of partition %d: %w", p, err)
	}
	store, err := Open(db, ps.logger.With("partition", p))
	if err != nil {
		db.Close()
		return nil, err
	}
	ps.parts[p] = &partition{db: db, store: store}
	return store, nil
}

// partitionOptions keeps a partition's Badger small: a worker holds a dozen
// of them, and Badger's defaults are sized for one per machine.
func partitionOptions(dir string) badger.Options {
	return BadgerOptions(dir).
		WithNumMemtables(2).
		WithValueLogFileSize(64 << 20).
		WithBlockCacheSize(16 << 20).
		WithNumCompactors(2)
}

// Store returns partition p's store, or nil when it is not open. A caller
// that reads it while the partition may be closed uses View instead.
func (ps *Partitions) Store(p int32) *Store {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	if pt := ps.parts[p]; pt != nil {
		return pt.store
	}
	return nil
}

// View calls fn with partition p's store, keeping the partition open until
// fn returns; it returns ErrNotOwned when p is not open.
func (ps *Partitions) View(p int32, fn func(*Store) error) error {
	ps.mu.RLock()
	pt := ps.parts[p]
	ps.mu.RUnlock()
	if pt == nil {
		return ErrNotOwned
	}
	pt.mu.RLock()
	defer pt.mu.RUnlock()
	if pt.store == nil {
		return ErrNotOwned
	}
	return fn(pt.store)
}

// Owned returns the open partitions in order.
func (ps *Partitions) Owned() []int32 {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	out := make([]int32, 0, len(ps.parts))
	for p := range ps.parts {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Trim gives back the mapped pages and the spare room of every open
// partition (Store.ReleasePages and Store.Trim), as a quiet process does
// every few seconds, and returns the bytes of heap Trim gave back.
func (ps *Partitions) Trim() int {
	freed := 0
	for _, p := range ps.Owned() {
		ps.View(p, func(s *Store) error {
			s.ReleasePages()
			freed += s.Trim()
			return nil
		})
	}
	return freed
}

// Resume returns the first offset of p not yet applied, 0 when p is not
// open or was never consumed; it is a crmpulse.ResumeFunc.
func (ps *Partitions) Resume(p int32) int64 {
	if s := ps.Store(p); s != nil {
		return s.Resume(p)
	}
	return 0
}

// Close closes partition p's state and keeps its files. It waits for the
// queries running on it; once it returns, p answers nothing.
func (ps *Partitions) Close(p int32) error {
	ps.mu.Lock()
	pt := ps.parts[p]
	delete(ps.parts, p)
	ps.mu.Unlock()
	if pt == nil {
		return nil
	}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.store = nil
	if err := pt.db.Close(); err != nil {
		return fmt.Errorf("close state of partition %d: %w", p, err)
	}
	return nil
}

// Drop closes partition p's state and deletes its files, so that the next
// Open starts it empty.
func (ps *Partitions) Drop(p int32) error {
	if err := ps.Close(p); err != nil {
		return err
	}
	if err := os.RemoveAll(ps.Dir(p)); err != nil {
		return fmt.Errorf("delete state of partition %d: %w", p, err)
	}
	return nil
}

// CloseAll closes every open partition.
func (ps *Partitions) CloseAll() error {
	var errs []error
	for _, p := range ps.Owned() {
		errs = append(errs, ps.Close(p))
	}
	return errors.Join(errs...)
}
