package aggregate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/crmpulse/crmpulse"
)

// staging is one Badger transaction of Apply being built: the keys go into
// txn at once; the records' touch histories it changes are kept until
// flush; the changes to the in-memory columns wait in ops, written as one
// journal entry, until the commit succeeded.
type staging struct {
	s        *Store
	txn      *badger.Txn
	records  map[string][]uint32 // history key -> the record's touch stamps
	added    []seriesKey         // new series, numbered from len(s.series)
	newIDs   map[seriesKey]uint32
	ops      []op
	buf      []byte   // scratch for the transaction value
	seenKeys []string // keys marked seen, for s.seen once committed
	// history keys of records first touched, for s.histories
	newHistories []string
}

// op is one event's change to the in-memory columns: its stamp, and for a
// touch the record's previous touch and, for a late touch, the next touch
// whose previous touch becomes t.
type op struct {
	sid           uint32
	action        int8 // index in crmpulse.Actions
	t, prev, next uint32
}

func (s *Store) newStaging(txn *badger.Txn) *staging {
	return &staging{s: s, txn: txn, records: map[string][]uint32{}, newIDs: map[seriesKey]uint32{}}
}

// stage writes e into the transaction unless its key was applied before.
func (st *staging) stage(e *crmpulse.Event, key string) (bool, error) {
	if h := st.s.horizons.events; h > 0 && e.At.Before(stampTime(h)) {
		st.s.metrics.lateDropped.Inc()
		return false, nil
	}
	seen := append([]byte{prefixSeen}, key...)
	if st.s.seen.mayContain(key) {
		if _, err := st.txn.Get(seen); err == nil {
			return false, nil
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return false, fmt.Errorf("look up event: %w", err)
		}
	}
	// The seen key carries no value: the transaction key holds the event.
	if err := st.txn.Set(seen, nil); err != nil {
		return false, err
	}
	st.seenKeys = append(st.seenKeys, key)
	// A late event past the transactions' retention counts in reports but
	// keeps no details, like the others of its time.
	var details []byte
	if h := st.s.horizons.tx; h == 0 || !e.At.Before(stampTime(h)) {
		st.buf = encodeEvent(st.buf[:0], e)
		details = slices.Clone(st.buf)
	} else {
		st.s.metrics.retentionDropped.WithLabelValues("transactions").Inc()
	}
	if err := st.txn.Set(txKey(e, key), details); err != nil {
		return false, err
	}
	t, ok := stampOf(e.At)
	if !ok {
		st.s.metrics.outOfRange.Inc()
		return true, nil
	}
	sid, err := st.seriesID(seriesKey{e.Tenant, e.Source, e.User, e.Entity})
	if err != nil {
		return false, err
	}
	a := e.Action.Index()
	if a < 0 {
		return true, nil // Validate keeps these out of the log
	}
	o := op{sid: sid, action: int8(a), t: t}
	if e.Action == crmpulse.Created || e.Action == crmpulse.Updated {
		if o.prev, o.next, err = st.touch(sid, e.Record, t); err != nil {
			return false, err
		}
	}
	st.ops = append(st.ops, o)
	return true, nil
}

// seriesID returns the id of k, numbering a new series.
func (st *staging) seriesID(k seriesKey) (uint32, error) {
	st.s.mu.RLock()
	sid, ok := st.s.ids[k]
	n := len(st.s.series)
	st.s.mu.RUnlock()
	if ok {
		return sid, nil
	}
	if sid, ok := st.newIDs[k]; ok {
		return sid, nil
	}
	sid = uint32(n + len(st.added))
	st.added = append(st.added, k)
	st.newIDs[k] = sid
	key := binary.BigEndian.AppendUint32([]byte{prefixSeries}, sid)
	return sid, st.txn.Set(key, encodeSeriesKey(k))
}

// touch records a touch of record at t and returns the stamp of the
// record's previous touch (0 for none) and, for a late touch that lands
// before the record's later ones, the stamp of the next touch, whose
// previous touch becomes t.
func (st *staging) touch(sid uint32, record string, t uint32) (prev, next uint32, err error) {
	key := string(historyKey(sid, record))
	stamps, ok := st.records[key]
	if !ok {
		if stamps, err = st.history(key); err != nil {
			return 0, 0, err
		}
	}
	i := lowerBound(stamps, t)
	if i < len(stamps) && stamps[i] == t {
		// Touched in the same second before: this touch adds no record
		// to any period, and the next touch's previous stays t.
		st.records[key] = stamps
		return t, 0, nil
	}
	if i > 0 {
		prev = stamps[i-1]
	}
	if i < len(stamps) {
		next = stamps[i]
	}
	st.records[key] = slices.Insert(stamps, i, t)
	return prev, next, nil
}

// history reads a record's touch stamps.
func (st *staging) history(key string) ([]uint32, error) {
	if !st.s.histories.mayContain(key[1:]) {
		st.newHistories = append(st.newHistories, key)
		return nil, nil
	}
	item, err := st.txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read record history: %w", err)
	}
	var stamps []uint32
	err = item.Value(func(v []byte) error {
		var ok bool
		stamps, ok = decodeStamps(v)
		if !ok {
			return fmt.Errorf("record history %x: %w", key, errCorrupt)
		}
		return nil
	})
	return stamps, err
}

// flush writes the changed record histories and the journal entry into the
// transaction.
func (st *staging) flush(seq uint64) error {
	for k, stamps := range st.records {
		if err := st.txn.Set([]byte(k), encodeStamps(stamps)); err != nil {
			return fmt.Errorf("stage record history: %w", err)
		}
	}
	if len(st.ops) == 0 {
		return nil
	}
	if err := st.txn.Set(journalKey(seq), encodeOps(st.ops)); err != nil {
		return fmt.Errorf("stage journal: %w", err)
	}
	return nil
}

// publish applies the committed changes to the in-memory columns; the
// caller holds s.mu.
func (st *staging) publish() {
	s := st.s
	for _, k := range st.added {
		s.addSeries(k)
	}
	s.applyOps(st.ops)
}

// applyOps applies the ops Apply staged to the in-memory columns; the
// caller holds s.mu. A late touch's next touch is one the record's
// history holds, so the columns hold it and applyOp cannot fail here; a
// replay at Open checks it.
func (s *Store) applyOps(ops []op) {
	for _, o := range ops {
		s.applyOp(o, true, o.next != 0)
	}
}

// applyOp applies o's event (add) and, for a late touch, the move of the
// next touch's previous touch to it (repoint). A replay at Open applies
// only the halves whose chunks a fold had not written.
func (s *Store) applyOp(o op, add, repoint bool) error {
	ser := s.series[o.sid]
	switch a := crmpulse.Actions[o.action]; a {
	case crmpulse.Created, crmpulse.Updated:
		if add {
			ser.addTouch(o.t, o.prev, a == crmpulse.Created)
		}
		if repoint && !ser.setPrev(o.next, o.prev, o.t) {
			return fmt.Errorf("series %d: no touch at %d after %d: %w", o.sid, o.next, o.prev, errCorrupt)
		}
	default:
		if add {
			ser.addOther(a, o.t)
		}
	}
	if add {
		s.events++
	}
	return nil
}

// historyKey is a record's touch history key: the prefix, the series id
// and the record id, length-prefixed so that no record id is a prefix of
// another's key.
func historyKey(sid uint32, record string) []byte {
	k := binary.BigEndian.AppendUint32([]byte{prefixHistory}, sid)
	k = binary.AppendUvarint(k, uint64(len(record)))
	return append(k, record...)
}

// encodeStamps packs a record's sorted touch stamps as varint deltas,
// about two bytes a touch.
func encodeStamps(stamps []uint32) []byte {
	b := make([]byte, 0, 2*len(stamps)+4)
	var last uint32
	for _, t := range stamps {
		b = binary.AppendUvarint(b, uint64(t-last))
		last = t
	}
	return b
}

func decodeStamps(b []byte) ([]uint32, bool) {
	out := make([]uint32, 0, len(b)/2+1)
	var last uint64
	for len(b) > 0 {
		d, n := binary.Uvarint(b)
		if n <= 0 || last+d > math.MaxUint32 {
			return nil, false
		}
		last += d
		out = append(out, uint32(last))
		b = b[n:]
	}
	return out, true
}

const secondsPerDay = 86400

// chunkKey is the key of a series' chunk of a UTC day (dayOf).
func chunkKey(sid, day uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32([]byte{prefixChunk}, sid), day)
}

func encodeSeriesKey(k seriesKey) []byte {
	return []byte(strings.Join([]string{k.Tenant, k.Source, k.User, k.Entity}, "\x00"))
}

func decodeSeriesKey(b []byte) (seriesKey, bool) {
	p := strings.Split(string(b), "\x00")
	if len(p) != 4 {
		return seriesKey{}, false
	}
	return seriesKey{p[0], p[1], p[2], p[3]}, true
}

// chunk is one series' events of one UTC day, sorted by time, after a
// header of chunkHeader bytes: the seq of the last journal entry it holds.
// Per event: the stamp (4 bytes), the previous touch's stamp (4) and the
// action (1). A chunk written before folds wrote headers has none: its
// length is a multiple of entrySize, which a chunk with one never is.
type chunk []byte

const (
	entrySize   = 9
	chunkHeader = 8
)

type entry struct {
	t, prev uint32
	action  uint8
}

// splitChunk returns the seq of the last journal entry c holds (0 when it
// has no header) and its entries.
func splitChunk(c chunk) (uint64, chunk, error) {
	switch len(c) % entrySize {
	case 0:
		return 0, c, nil
	case chunkHeader:
		return binary.BigEndian.Uint64(c), c[chunkHeader:], nil
	}
	return 0, nil, fmt.Errorf("chunk of %d bytes: %w", len(c), errCorrupt)
}

func (c chunk) at(i int) entry {
	b := c[i*entrySize:]
	return entry{binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:]), b[8]}
}

func (c chunk) entries() []entry {
	out := make([]entry, len(c)/entrySize)
	for i := range out {
		out[i] = c.at(i)
	}
	return out
}
