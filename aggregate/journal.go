package aggregate

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Each Apply transaction writes its changes to the columns as one journal
// entry instead of rewriting the day chunks it touches: one key per
// transaction rather than one per (series, day). Once foldOps changes are
// journaled, fold rewrites the chunks they touch and deletes the entries,
// in one Badger transaction, so a day's chunk is rewritten once per fold
// rather than once per Apply transaction. Open loads the chunks, then
// replays the entries left.

// foldOps is how many journaled changes wait before a fold; tests lower it.
// A fold reads and rewrites every day chunk its changes touch, however few
// changes each chunk gets, so folding rarely keeps what is rewritten per
// event small as the chunks grow: at 20,000 the folds took most of the
// worker's time once a few million events were stored. The entries waiting
// cost 20 bytes a change in memory and are replayed at Open.
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

// loadJournals replays the entries left after the last fold onto the
// columns loaded from the chunks, and keeps them for the next fold.
func (s *Store) loadJournals(txn *badger.Txn) error {
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
		s.applyOps(ops)
		s.journals = append(s.journals, journal{seq, ops})
		s.journaled += len(ops)
		s.nextSeq = seq + 1
	}
	return nil
}

// fold writes the journaled changes into the day chunks and deletes the
// entries. A transaction holds whole entries, so a crash leaves each entry
// either journaled or folded; a fold too big for one transaction is split
// between entries, and a single entry too big (its day chunks have grown
// large) is folded in parts. The caller holds applyMu.
func (s *Store) fold() error {
	return s.foldEntries(s.journals)
}

// foldEntries folds entries, the first of s.journals.
func (s *Store) foldEntries(entries []journal) error {
	err := s.foldTxn(entries)
	switch {
	case !errors.Is(err, badger.ErrTxnTooBig):
		return err
	case len(entries) == 1:
		return s.foldInParts(entries[0])
	}
	half := len(entries) / 2
	if err := s.foldEntries(entries[:half]); err != nil {
		return err
	}
	return s.foldEntries(entries[half:])
}

// foldInParts folds the first entry of s.journals, j, a prefix of its
// changes at a time. Each transaction writes the prefix into the chunks
// and the rest back as the entry, so that after any commit every change
// is in the chunks or in the journal, never in both. A prefix is safe to
// fold first: a change's next touch was staged before it.
func (s *Store) foldInParts(j journal) error {
	ops := j.ops
	for len(ops) > 0 {
		n := len(ops)
		for {
			err := s.foldPrefix(j.seq, ops, n)
			if err == nil {
				break
			}
			if !errors.Is(err, badger.ErrTxnTooBig) || n == 1 {
				return err
			}
			n /= 2
		}
		ops = ops[n:]
	}
	return nil
}

// foldPrefix folds ops[:n] of the entry seq, the first of s.journals, and
// leaves ops[n:] journaled.
func (s *Store) foldPrefix(seq uint64, ops []op, n int) error {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	f := folding{txn: txn, chunks: map[string]chunk{}}
	for _, o := range ops[:n] {
		if err := f.add(o); err != nil {
			return err
		}
	}
	if err := f.stage(); err != nil {
		return err
	}
	var err error
	if n < len(ops) {
		err = txn.Set(journalKey(seq), encodeOps(ops[n:]))
	} else {
		err = txn.Delete(journalKey(seq))
	}
	if err != nil {
		return fmt.Errorf("stage journal: %w", err)
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("commit fold: %w", err)
	}
	s.journaled -= n
	if n < len(ops) {
		s.journals[0].ops = ops[n:]
	} else {
		s.journals = s.journals[1:]
	}
	return nil
}

func (s *Store) foldTxn(entries []journal) error {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	f := folding{txn: txn, chunks: map[string]chunk{}}
	for _, j := range entries {
		for _, o := range j.ops {
			if err := f.add(o); err != nil {
				return err
			}
		}
	}
	if err := f.stage(); err != nil {
		return err
	}
	for _, j := range entries {
		if err := txn.Delete(journalKey(j.seq)); err != nil {
			return fmt.Errorf("stage journal deletion: %w", err)
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("commit fold: %w", err)
	}
	// Entries fold in order: the ones just folded lead the list.
	for _, j := range entries {
		s.journaled -= len(j.ops)
	}
	s.journals = s.journals[len(entries):]
	return nil
}

// folding is one fold transaction being built: the chunks it rewrites,
// kept until all its entries are in.
type folding struct {
	txn    *badger.Txn
	chunks map[string]chunk // chunk key -> new contents
}

// stage writes the rewritten chunks into the transaction.
func (f *folding) stage() error {
	for k, c := range f.chunks {
		if err := f.txn.Set([]byte(k), c); err != nil {
			return fmt.Errorf("stage chunk: %w", err)
		}
	}
	return nil
}

// add puts o's event into its day chunk and, for a late touch, moves the
// next touch's previous touch to it.
func (f *folding) add(o op) error {
	c, key, err := f.chunk(o.sid, o.t)
	if err != nil {
		return err
	}
	f.chunks[key] = c.insert(entry{t: o.t, prev: o.prev, action: uint8(o.action)})
	if o.next == 0 {
		return nil
	}
	c, key, err = f.chunk(o.sid, o.next)
	if err != nil {
		return err
	}
	if !c.setPrev(o.next, o.prev, o.t) {
		return fmt.Errorf("series %d: no touch at %d after %d: %w", o.sid, o.next, o.prev, errCorrupt)
	}
	f.chunks[key] = c
	return nil
}

// chunk returns the current contents of the chunk holding stamp t.
func (f *folding) chunk(sid, t uint32) (chunk, string, error) {
	key := string(chunkKey(sid, t))
	if c, ok := f.chunks[key]; ok {
		return c, key, nil
	}
	item, err := f.txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, key, nil
	}
	if err != nil {
		return nil, key, fmt.Errorf("read chunk: %w", err)
	}
	v, err := item.ValueCopy(nil)
	return chunk(v), key, err
}
