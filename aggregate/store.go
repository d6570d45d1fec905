// Package aggregate holds the stream workers' state: every event applied
// once, by its identity, to the per-user event columns and the transaction
// index, with the log position written in the same Badger transaction as
// the state it produced. Badger is the truth; compact in-memory columns
// rebuilt from it at Open answer reports.
package aggregate

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmpulse/crmpulse"
)

// Key prefixes in Badger. The directory and other components use their own
// prefixes of more than one byte.
const (
	prefixPosition = 'p' // partition -> last applied offset
	prefixSeen     = 'e' // event key -> nothing: the event was applied
	prefixTx       = 'x' // time, event key -> the event (codec.go)
	prefixSeries   = 'k' // series id -> tenant, source, user, entity
	prefixChunk    = 'c' // series id, UTC day -> the day's events, packed
	prefixJournal  = 'j' // sequence -> changes not folded into chunks yet
	prefixHistory  = 'h' // series id, record -> the record's touch stamps
)

// maxTxnRecords bounds the records applied in one Badger transaction, well
// under Badger's transaction size limit.
const maxTxnRecords = 2000

// Store applies events to the state and answers queries over it. Apply may
// be called from several goroutines (one worker per partition); calls are
// serialized. Queries may run concurrently with Apply.
type Store struct {
	db      *badger.DB
	logger  *slog.Logger
	metrics metrics

	applyMu   sync.Mutex // serializes Apply; guards the journal fields
	journals  []journal  // entries not folded yet, in order
	journaled int        // changes in journals
	nextSeq   uint64     // the next entry's sequence
	retention Retention
	// Every committed seen key and record history key (without their
	// prefixes); guarded by applyMu.
	seen, histories *seenFilter

	mu     sync.RWMutex // guards what follows
	ids    map[seriesKey]uint32
	keys   []seriesKey
	series []*series
	// Each series' actor (tenant, source, user) and entity, numbered, so
	// that a report resolves each actor to its row once, not per series.
	actorOf, entityOf []uint32
	actors            map[[3]string]uint32
	actorKeys         [][3]string
	entities          map[string]uint32
	entityNames       []string
	// Each series' group (tenant, source, entity), numbered, and each
	// group's entity; days counts the groups' events per day (days.go).
	groups      map[[3]string]uint32
	groupEntity []uint32
	days        dayCaches
	events      int
	positions   map[int32]int64
	horizons    horizons // written under both applyMu and mu
}

type metrics struct {
	outOfRange       prometheus.Counter
	retentionDropped *prometheus.CounterVec
	lateDropped      prometheus.Counter
}

// Open loads the state kept in db. The caller owns db and closes it after
// the store is no longer used.
func Open(db *badger.DB, logger *slog.Logger) (*Store, error) {
	s := &Store{
		db: db, logger: logger.With("component", "aggregate"),
		ids: map[seriesKey]uint32{}, positions: map[int32]int64{},
		actors: map[[3]string]uint32{}, entities: map[string]uint32{}, groups: map[[3]string]uint32{},
		metrics: metrics{outOfRange: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crmpulse_state_out_of_range_total",
			Help: "Events dated before 1970 or after 2106: kept in the transaction index, not counted in reports.",
		})},
	}
	s.metrics.retentionDropped, s.metrics.lateDropped = newRetentionMetrics()
	for _, kind := range []string{"events", "transactions"} {
		s.metrics.retentionDropped.WithLabelValues(kind)
	}
	err := db.View(func(txn *badger.Txn) error {
		if err := s.loadPositions(txn); err != nil {
			return err
		}
		if err := s.loadHorizons(txn); err != nil {
			return err
		}
		s.seen = loadFilter(txn, prefixSeen)
		s.histories = loadFilter(txn, prefixHistory)
		if err := s.loadSeries(txn); err != nil {
			return err
		}
		folded, err := s.loadChunks(txn)
		if err != nil {
			return err
		}
		return s.loadJournals(txn, folded)
	})
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	if err := s.checkFormat(); err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	for _, ser := range s.series {
		ser.loaded()
	}
	if !db.Opts().InMemory {
		n := dropTablePages(db.Opts().Dir)
		s.logger.Debug("table pages read by the load dropped from memory", "bytes", n)
	}
	s.logger.Info("state loaded", "events", s.events, "series", len(s.series), "partitions", len(s.positions))
	return s, nil
}

// addSeries numbers a new series; the caller holds s.mu or is loading.
func (s *Store) addSeries(k seriesKey) {
	s.ids[k] = uint32(len(s.series))
	s.keys = append(s.keys, k)
	actor := [3]string{k.Tenant, k.Source, k.User}
	a := number(s.actors, actor, func() { s.actorKeys = append(s.actorKeys, actor) })
	e := number(s.entities, k.Entity, func() { s.entityNames = append(s.entityNames, k.Entity) })
	group := [3]string{k.Tenant, k.Source, k.Entity}
	g := number(s.groups, group, func() { s.groupEntity = append(s.groupEntity, e) })
	s.series = append(s.series, &series{group: g, days: &s.days})
	s.actorOf = append(s.actorOf, a)
	s.entityOf = append(s.entityOf, e)
}

// number returns k's number in ids, numbering it next and calling added
// when it is new.
func number[K comparable](ids map[K]uint32, k K, added func()) uint32 {
	n, ok := ids[k]
	if !ok {
		n = uint32(len(ids))
		ids[k] = n
		added()
	}
	return n
}

// Collectors returns the store's Prometheus metrics, for the caller to
// register.
func (s *Store) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.outOfRange, s.metrics.retentionDropped, s.metrics.lateDropped}
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

func (s *Store) loadSeries(txn *badger.Txn) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixSeries}, PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		sid := binary.BigEndian.Uint32(it.Item().Key()[1:])
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		k, ok := decodeSeriesKey(v)
		if !ok || int(sid) != len(s.series) {
			return fmt.Errorf("series %d: corrupt key %q", sid, v)
		}
		s.addSeries(k)
	}
	return nil
}

// loadChunks rebuilds the columns from the day chunks. Chunks come in key
// order (series, then day) and hold their events in time order, so every
// column is built by appending. Chunks before the retention horizon, left
// by a pass cut short, are skipped. It returns the chunks that hold
// journal entries still left, by a fold cut short, and the last entry
// each holds (see loadJournals).
func (s *Store) loadChunks(txn *badger.Txn) (map[uint64]uint64, error) {
	folded := map[uint64]uint64{}
	first, pending := firstJournal(txn)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixChunk}, PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		key := it.Item().Key()
		sid, day := binary.BigEndian.Uint32(key[1:]), binary.BigEndian.Uint32(key[5:])
		if s.horizons.events > 0 && day < dayOf(s.horizons.events) {
			continue
		}
		if int(sid) >= len(s.series) {
			return nil, fmt.Errorf("chunk of unknown series %d", sid)
		}
		ser := s.series[sid]
		err := it.Item().Value(func(v []byte) error {
			through, c, err := splitChunk(v)
			if err != nil {
				return err
			}
			if pending && through >= first {
				folded[chunkID(sid, day)] = through
			}
			for _, e := range c.entries() {
				s.events++
				switch e.action {
				case 0, 1:
					ser.touch = append(ser.touch, e.t)
					ser.prev = append(ser.prev, e.prev)
					if e.action == 0 {
						ser.created = append(ser.created, e.t)
					}
				case 2:
					ser.deleted = append(ser.deleted, e.t)
				case 3:
					ser.restored = append(ser.restored, e.t)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return folded, nil
}

// Events returns how many events the report columns hold.
func (s *Store) Events() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.events
}

// Trim gives back the room the in-memory columns and the seen-key
// filters grew by as events were applied, and returns how many bytes
// that was. Appending to a column grows it by a quarter at a time, so
// after a backlog of millions a fifth of the columns can be room: 28 MB
// of 116 at 10M events in make bench. Servers call it when the state has
// gone quiet; each series is copied under the lock on its own, so reports
// wait at most for one.
func (s *Store) Trim() int {
	s.applyMu.Lock()
	freed := s.seen.fold() + s.histories.fold()
	s.applyMu.Unlock()
	s.mu.RLock()
	n := len(s.series)
	s.mu.RUnlock()
	for i := range n {
		s.mu.Lock()
		freed += s.series[i].fit()
		s.mu.Unlock()
	}
	return freed
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
// that were new. The records of one offset are applied together. Records at or before the partition's committed position,
// and events whose identity was applied before, change nothing. The
// position and the state are committed in one Badger transaction (one per
// maxTxnRecords records), so a crash at any point leaves both as they were
// or both applied.
func (s *Store) Apply(ctx context.Context, batch []crmpulse.Record) ([]crmpulse.Event, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	var fresh []crmpulse.Event
	for start := 0; start < len(batch); {
		if err := ctx.Err(); err != nil {
			return fresh, err
		}
		end := txnEnd(batch, start)
		part, err := s.applyTxn(batch[start:end])
		if err != nil {
			return fresh, err
		}
		fresh = append(fresh, part...)
		start = end
	}
	return fresh, nil
}

// txnEnd returns where the transaction that starts at batch[start] ends:
// after at most maxTxnRecords records, but never between two records of
// one offset (the events of one log message), since the position it
// commits says the whole message is applied. A message larger than
// maxTxnRecords is one transaction.
func txnEnd(batch []crmpulse.Record, start int) int {
	end := min(start+maxTxnRecords, len(batch))
	cut := end
	for cut > start && cut < len(batch) && batch[cut].Offset == batch[cut-1].Offset {
		cut--
	}
	if cut > start {
		return cut
	}
	for end < len(batch) && batch[end].Offset == batch[end-1].Offset {
		end++
	}
	return end
}

func (s *Store) applyTxn(batch []crmpulse.Record) ([]crmpulse.Event, error) {
	part := batch[0].Partition
	s.mu.RLock()
	committed, known := s.positions[part]
	s.mu.RUnlock()

	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	st := s.newStaging(txn)
	seq := s.nextSeq
	var fresh []crmpulse.Event
	inBatch := make(map[string]struct{}, len(batch))
	last, moved := committed, false
	for i := range batch {
		r := &batch[i]
		if known && r.Offset <= committed {
			continue
		}
		last, moved = r.Offset, true
		key := r.Event.Key()
		if _, dup := inBatch[key]; dup {
			continue
		}
		inBatch[key] = struct{}{}
		isNew, err := st.stage(&r.Event, key)
		if err != nil {
			return nil, err
		}
		if isNew {
			fresh = append(fresh, r.Event)
		}
	}
	if !moved {
		return nil, nil
	}
	if err := st.flush(seq); err != nil {
		return nil, err
	}
	if err := commit(txn, part, last); err != nil {
		return nil, err
	}
	for _, k := range st.seenKeys {
		s.seen.add(k)
	}
	for _, k := range st.newHistories {
		s.histories.add(k[1:])
	}
	if len(st.ops) > 0 {
		s.journals = append(s.journals, journal{seq, st.ops})
		s.journaled += len(st.ops)
		s.nextSeq++
	}

	s.mu.Lock()
	st.publish()
	s.positions[part] = last
	s.mu.Unlock()
	if s.journaled >= foldOps {
		if err := s.fold(); err != nil {
			return nil, err
		}
	}
	return fresh, nil
}

func commit(txn *badger.Txn, part int32, offset int64) error {
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

// ErrOldState is returned by Open for a state written before records'
// touch histories were kept in one key. It is not converted: move the
// state directory aside and restart, and the workers rebuild it from the
// log.
var ErrOldState = errors.New("state written by an older crmpulse: move it aside to rebuild it from the log")

// formatKey marks a state in the current format, whose day chunks may
// carry a header (splitChunk); formatKey2 the one before, whose chunks
// never do and which this one reads as it is. The first had no mark.
var (
	formatKey  = []byte("\x00aggregate/format/3")
	formatKey2 = []byte("\x00aggregate/format/2")
)

// checkFormat marks a new state, or one in the format before, as the
// current format, so that a crmpulse from before refuses it, and refuses
// one older still.
func (s *Store) checkFormat() error {
	return s.db.Update(func(txn *badger.Txn) error {
		_, err := txn.Get(formatKey)
		if err == nil || !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		_, err = txn.Get(formatKey2)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound) && len(s.series) > 0:
			return ErrOldState
		case err == nil:
			if err := txn.Delete(formatKey2); err != nil {
				return err
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		return txn.Set(formatKey, nil)
	})
}

var errCorrupt = errors.New("corrupt state")
