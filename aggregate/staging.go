package aggregate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/crmpulse/crmpulse"
)

// staging is one Badger transaction of Apply being built: the keys go into
// txn at once, the day chunks it rewrites are kept until flush, and the
// changes to the in-memory columns wait in ops until the commit succeeded.
type staging struct {
	s      *Store
	txn    *badger.Txn
	chunks map[string]chunk // chunk key -> new contents
	added  []seriesKey      // new series, numbered from len(s.series)
	newIDs map[seriesKey]uint32
	ops    []op
	events int
}

// op is one change to the in-memory columns.
type op struct {
	sid           uint32
	action        int8 // index in crmpulse.Actions; -1 sets a touch's prev
	t, prev, next uint32
}

func (s *Store) newStaging(txn *badger.Txn) *staging {
	return &staging{s: s, txn: txn, chunks: map[string]chunk{}, newIDs: map[seriesKey]uint32{}}
}

// stage writes e into the transaction unless its key was applied before.
func (st *staging) stage(e *crmpulse.Event, key string) (bool, error) {
	seen := append([]byte{prefixSeen}, key...)
	if _, err := st.txn.Get(seen); err == nil {
		return false, nil
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return false, fmt.Errorf("look up event: %w", err)
	}
	data, err := encodeEvent(e)
	if err != nil {
		return false, err
	}
	tx := txKey(e, key)
	if err := st.txn.Set(seen, tx); err != nil {
		return false, err
	}
	if err := st.txn.Set(tx, data); err != nil {
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
	if err := st.addToChunk(o); err != nil {
		return false, err
	}
	st.ops = append(st.ops, o)
	st.events++
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
	rec := recordKey(sid, record)
	lastKey := append([]byte{prefixLast}, rec...)
	last, err := st.getStamp(lastKey)
	if err != nil {
		return 0, 0, err
	}
	touchKey := binary.BigEndian.AppendUint32(append([]byte{prefixTouch}, rec...), t)
	count, err := st.getStamp(touchKey)
	if err != nil {
		return 0, 0, err
	}
	setCount := func() error { return st.txn.Set(touchKey, binary.BigEndian.AppendUint32(nil, count+1)) }
	switch {
	case count > 0:
		// Touched in the same second before: this touch adds no record
		// to any period, and the next touch's previous stays t.
		return t, 0, setCount()
	case t > last:
		if err := st.txn.Set(lastKey, binary.BigEndian.AppendUint32(nil, t)); err != nil {
			return 0, 0, err
		}
		return last, 0, setCount()
	}
	// A late touch: find its neighbours among the record's touches.
	prefix := append([]byte{prefixTouch}, rec...)
	if prev, err = st.neighbour(prefix, touchKey, true); err != nil {
		return 0, 0, err
	}
	if next, err = st.neighbour(prefix, touchKey, false); err != nil {
		return 0, 0, err
	}
	return prev, next, setCount()
}

// neighbour returns the stamp of the key under prefix just before (or
// after) key, or 0.
func (st *staging) neighbour(prefix, key []byte, before bool) (uint32, error) {
	it := st.txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: before})
	defer it.Close()
	it.Seek(key)
	if it.Valid() && bytes.Equal(it.Item().Key(), key) {
		it.Next()
	}
	if !it.Valid() {
		return 0, nil
	}
	k := it.Item().Key()
	return binary.BigEndian.Uint32(k[len(k)-4:]), nil
}

func (st *staging) getStamp(key []byte) (uint32, error) {
	item, err := st.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read state: %w", err)
	}
	var v uint32
	err = item.Value(func(b []byte) error {
		if len(b) != 4 {
			return errCorrupt
		}
		v = binary.BigEndian.Uint32(b)
		return nil
	})
	return v, err
}

// addToChunk puts o's event into its day chunk and, for a late touch, moves
// the next touch's previous touch to it.
func (st *staging) addToChunk(o op) error {
	c, key, err := st.chunk(o.sid, o.t)
	if err != nil {
		return err
	}
	st.chunks[key] = c.insert(entry{t: o.t, prev: o.prev, action: uint8(o.action)})
	if o.next == 0 {
		return nil
	}
	c, key, err = st.chunk(o.sid, o.next)
	if err != nil {
		return err
	}
	if !c.setPrev(o.next, o.prev, o.t) {
		return fmt.Errorf("series %d: no touch at %d after %d: %w", o.sid, o.next, o.prev, errCorrupt)
	}
	st.chunks[key] = c
	return nil
}

// chunk returns the current contents of the chunk holding stamp t.
func (st *staging) chunk(sid, t uint32) (chunk, string, error) {
	key := string(chunkKey(sid, t))
	if c, ok := st.chunks[key]; ok {
		return c, key, nil
	}
	item, err := st.txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, key, nil
	}
	if err != nil {
		return nil, key, fmt.Errorf("read chunk: %w", err)
	}
	v, err := item.ValueCopy(nil)
	return chunk(v), key, err
}

// flush writes the rewritten chunks into the transaction.
func (st *staging) flush() error {
	for k, c := range st.chunks {
		if err := st.txn.Set([]byte(k), c); err != nil {
			return fmt.Errorf("stage chunk: %w", err)
		}
	}
	return nil
}

// publish applies the committed changes to the in-memory columns; the
// caller holds s.mu.
func (st *staging) publish() {
	s := st.s
	for _, k := range st.added {
		s.ids[k] = uint32(len(s.series))
		s.keys = append(s.keys, k)
		s.series = append(s.series, &series{})
	}
	for _, o := range st.ops {
		ser := s.series[o.sid]
		switch a := crmpulse.Actions[o.action]; a {
		case crmpulse.Created, crmpulse.Updated:
			ser.addTouch(o.t, o.prev, a == crmpulse.Created)
			if o.next != 0 {
				ser.setPrev(o.next, o.prev, o.t)
			}
		default:
			ser.addOther(a, o.t)
		}
	}
	s.events += st.events
}

// recordKey is a series id and a record id, length-prefixed so that no
// record id is a prefix of another's key.
func recordKey(sid uint32, record string) []byte {
	k := binary.BigEndian.AppendUint32(nil, sid)
	k = binary.AppendUvarint(k, uint64(len(record)))
	return append(k, record...)
}

const secondsPerDay = 86400

func chunkKey(sid, t uint32) []byte {
	k := binary.BigEndian.AppendUint32([]byte{prefixChunk}, sid)
	return binary.BigEndian.AppendUint32(k, (t-1)/secondsPerDay)
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

// chunk is one series' events of one UTC day, sorted by time: per event
// the stamp (4 bytes), the previous touch's stamp (4) and the action (1).
type chunk []byte

const entrySize = 9

type entry struct {
	t, prev uint32
	action  uint8
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

// insert returns c with e after the entries at or before its time.
func (c chunk) insert(e entry) chunk {
	n := len(c) / entrySize
	i := n
	for i > 0 && c.at(i-1).t > e.t {
		i--
	}
	b := make([]byte, 0, len(c)+entrySize)
	b = append(b, c[:i*entrySize]...)
	b = binary.BigEndian.AppendUint32(b, e.t)
	b = binary.BigEndian.AppendUint32(b, e.prev)
	b = append(b, e.action)
	return append(b, c[i*entrySize:]...)
}

// setPrev changes one touch at t whose previous touch is old to prev.
func (c chunk) setPrev(t, old, prev uint32) bool {
	for i := range len(c) / entrySize {
		if e := c.at(i); e.t == t && e.action <= 1 && e.prev == old {
			binary.BigEndian.PutUint32(c[i*entrySize+4:], prev)
			return true
		}
	}
	return false
}
