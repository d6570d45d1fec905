package aggregate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/dgraph-io/badger/v4"
)

// Each Apply transaction writes its changes to the columns as one journal
// entry instead of rewriting the day chunks it touches: one key per
// transaction rather than one per (series, day). Once foldOps changes are
// journaled, fold writes every chunk they touch as the in-memory columns
// hold it, which is every change journaled, and then deletes the entries.
// Each chunk it writes carries the seq of the last entry it holds, so the
// writes need not be one transaction: Open loads the chunks, then replays
// each entry left only into the chunks written before it.

// foldOps is how many journaled changes wait before a fold; tests lower it.
// A fold rewrites every day chunk its changes touch, however few changes
// each chunk gets, so folding rarely keeps what is rewritten per event
// small as the chunks grow. The entries waiting cost 20 bytes a change in
// memory and are replayed at Open.
var foldOps = 200_000

const opSize = 17

func journalKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixJournal}, seq)
}

// encodeOps packs ops: series (4 bytes), action (1), stamp (4), previous
// (4) and next touch (4).
func encodeOps(ops []op) []byte {
	b := make([]byte, 0, len(ops)*opSize)
	for _, o := range ops {
		b = binary.BigEndian.AppendUint32(b, o.sid)
		b = append(b, byte(o.action))
		b = binary.BigEndian.AppendUint32(b, o.t)
		b = binary.BigEndian.AppendUint32(b, o.prev)
		b = binary.BigEndian.AppendUint32(b, o.next)
	}
	return b
}

func decodeOps(b []byte, series int) ([]op, error) {
	if len(b)%opSize != 0 {
		return nil, fmt.Errorf("journal of %d bytes: %w", len(b), errCorrupt)
	}
	out := make([]op, len(b)/opSize)
	for i := range out {
		c := b[i*opSize:]
		o := op{sid: binary.BigEndian.Uint32(c), action: int8(c[4]), t: binary.BigEndian.Uint32(c[5:]),
			prev: binary.BigEndian.Uint32(c[9:]), next: binary.BigEndian.Uint32(c[13:])}
		if int(o.sid) >= series || o.action < 0 || o.action > 3 {
			return nil, fmt.Errorf("journal op %+v: %w", o, errCorrupt)
		}
		out[i] = o
	}
	return out, nil
}

// journal is one entry not folded yet.
type journal struct {
	seq uint64
	ops []op
}

// dayOf numbers the UTC day of a stamp, as chunk keys do.
func dayOf(t uint32) uint32 { return (t - 1) / secondsPerDay }

// chunkID names a series' chunk of a UTC day in memory.
func chunkID(sid, day uint32) uint64 { return uint64(sid)<<32 | uint64(day) }

// firstJournal returns the seq of the first entry left, or false when the
// journal is empty.
func firstJournal(txn *badger.Txn) (uint64, bool) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixJournal}})
	defer it.Close()
	it.Rewind()
	if !it.Valid() {
		return 0, false
	}
	return binary.BigEndian.Uint64(it.Item().Key()[1:]), true
}

// loadJournals replays the entries left after the last fold onto the
// columns loaded from the chunks, and keeps them for the next fold. A
// change goes only into what a fold cut short had not written: folded
// holds the chunks written with an entry at or after the first left, and
// the last entry each holds.
func (s *Store) loadJournals(txn *badger.Txn, folded map[uint64]uint64) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixJournal}, PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		seq := binary.BigEndian.Uint64(it.Item().Key()[1:])
		var ops []op
		err := it.Item().Value(func(v []byte) error {
			var err error
			ops, err = decodeOps(v, len(s.series))
			return err
		})
		if err != nil {
			return err
		}
		// A change's two halves go each where a fold had not put it.
		unfolded := func(sid, t uint32) bool {
			held, ok := folded[chunkID(sid, dayOf(t))]
			return !ok || held < seq
		}
		for _, o := range ops {
			add := unfolded(o.sid, o.t)
			repoint := o.next != 0 && unfolded(o.sid, o.next)
			if err := s.applyOp(o, add, repoint); err != nil {
				return err
			}
		}
		s.journals = append(s.journals, journal{seq, ops})
		s.journaled += len(ops)
		s.nextSeq = seq + 1
	}
	return nil
}

// foldInterrupted, when tests set it, stops a fold after that many chunks
// are written, as a crash would.
var foldInterrupted = -1

var errFoldInterrupted = errors.New("fold interrupted")

// fold writes every chunk the journaled changes touch from the columns,
// then deletes the entries. The caller holds applyMu, so the columns hold
// exactly the chunks and the journal.
func (s *Store) fold() error {
	if len(s.journals) == 0 {
		return nil
	}
	through := s.journals[len(s.journals)-1].seq
	touched := map[uint64]struct{}{}
	for _, j := range s.journals {
		for _, o := range j.ops {
			touched[chunkID(o.sid, dayOf(o.t))] = struct{}{}
			if o.next != 0 {
				touched[chunkID(o.sid, dayOf(o.next))] = struct{}{}
			}
		}
	}
	ids := slices.Sorted(maps.Keys(touched))
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	var buf []byte
	for i, id := range ids {
		if i == foldInterrupted {
			if err := wb.Flush(); err != nil {
				return err
			}
			return errFoldInterrupted
		}
		sid, day := uint32(id>>32), uint32(id)
		buf = s.series[sid].appendChunk(binary.BigEndian.AppendUint64(buf[:0], through), day)
		key := chunkKey(sid, day)
		var err error
		if len(buf) == chunkHeader {
			err = wb.Delete(key) // retention took the day's events
		} else {
			err = wb.Set(key, slices.Clone(buf))
		}
		if err != nil {
			return fmt.Errorf("stage chunk: %w", err)
		}
	}
	for _, j := range s.journals {
		if err := wb.Delete(journalKey(j.seq)); err != nil {
			return fmt.Errorf("stage journal deletion: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("commit fold: %w", err)
	}
	s.journals, s.journaled = nil, 0
	return nil
}

// appendChunk appends the entries of the series' events on day to b, in
// time order. Touches at the same stamp are interchangeable but for being
// a creation: the first of them are, as many as the created column holds
// at that stamp.
func (ser *series) appendChunk(b []byte, day uint32) []byte {
	lo, hi := day*secondsPerDay+1, (day+1)*secondsPerDay+1
	first := lowerBound(ser.touch, lo)
	touch, prev := ser.touch[first:lowerBound(ser.touch, hi)], ser.prev[first:]
	created := ser.created[lowerBound(ser.created, lo):lowerBound(ser.created, hi)]
	deleted := ser.deleted[lowerBound(ser.deleted, lo):lowerBound(ser.deleted, hi)]
	restored := ser.restored[lowerBound(ser.restored, lo):lowerBound(ser.restored, hi)]
	put := func(t, p uint32, action uint8) {
		b = binary.BigEndian.AppendUint32(b, t)
		b = binary.BigEndian.AppendUint32(b, p)
		b = append(b, action)
	}
	i, c, d, r := 0, 0, 0, 0
	for i < len(touch) || d < len(deleted) || r < len(restored) {
		// The earliest of the three columns' next stamps; touches first.
		switch next := min(at(touch, i), at(deleted, d), at(restored, r)); {
		case i < len(touch) && touch[i] == next:
			action := uint8(1)
			if c < len(created) && created[c] == next {
				action = 0
				c++
			}
			put(next, prev[i], action)
			i++
		case d < len(deleted) && deleted[d] == next:
			put(next, 0, 2)
			d++
		default:
			put(next, 0, 3)
			r++
		}
	}
	return b
}

// at returns ts[i], or the largest stamp past its end.
func at(ts []uint32, i int) uint32 {
	if i < len(ts) {
		return ts[i]
	}
	return math.MaxUint32
}
