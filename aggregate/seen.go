package aggregate

import (
	"github.com/bits-and-blooms/bloom/v3"
	"github.com/dgraph-io/badger/v4"
)

// seenFilter tells of a key that it was certainly never committed, or that
// it may have been. The store keeps one of the events' seen keys and one of
// the records' history keys: every such key committed is in it, so
// "certainly not" is exact, and Apply asks Badger only about the others. A
// new event (nearly every event) costs no duplicate lookup, and a record's
// first touch in a series no history lookup. When the keys outgrow
// the filters' capacity a new filter as large as all before it is added,
// so the false-positive rate stays near seenFalsePositive. Only Open and
// Apply use it, under applyMu or before the store is shared.
type seenFilter struct {
	filters []*bloom.BloomFilter
	keys    uint // keys in the last filter
	size    uint // the last filter's capacity
	total   uint // keys in all filters
}

const (
	seenFalsePositive = 0.01
	seenMinSize       = 1 << 16
)

func newSeenFilter(expected uint) *seenFilter {
	f := &seenFilter{}
	f.grow(max(expected+expected/2, seenMinSize))
	return f
}

func (f *seenFilter) grow(size uint) {
	f.filters = append(f.filters, bloom.NewWithEstimates(size, seenFalsePositive))
	f.keys, f.size = 0, size
}

func (f *seenFilter) add(key string) {
	if f.keys == f.size {
		f.grow(f.total)
	}
	f.filters[len(f.filters)-1].AddString(key)
	f.keys++
	f.total++
}

// mayContain reports whether key may have been added; false is certain.
func (f *seenFilter) mayContain(key string) bool {
	for _, b := range f.filters {
		if b.TestString(key) {
			return true
		}
	}
	return false
}

// loadFilter returns a filter of the keys in Badger that start with
// prefix, without it: it counts them first, so that one filter holds them
// all at its intended rate.
func loadFilter(txn *badger.Txn, prefix byte) *seenFilter {
	opts := badger.IteratorOptions{Prefix: []byte{prefix}}
	var n uint
	it := txn.NewIterator(opts)
	for it.Rewind(); it.Valid(); it.Next() {
		n++
	}
	it.Close()
	f := newSeenFilter(n)
	it = txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		f.add(string(it.Item().Key()[1:]))
	}
	return f
}
