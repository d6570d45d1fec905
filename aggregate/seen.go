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
// so each filter's false-positive rate stays near 1%. Only Open,
// Apply and Trim use it, under applyMu or before the store is shared.
//
// Each filter has a power of two of bits, so that the last, which holds
// fewer keys than it has room for, can be folded in half (fold) once the
// state is quiet.
type seenFilter struct {
	filters []*bloom.BloomFilter
	keys    uint // keys in the last filter
	size    uint // the last filter's capacity
	total   uint // keys in all filters
}

const (
	// seenBitsPerKey and seenHashes hold a filter's false-positive rate
	// at 1% when it holds its capacity: -ln(0.01)/ln(2)² bits a key, and
	// that many times ln 2 hashes, rounded.
	seenBitsPerKey = 9.585
	seenHashes     = 7
	// seenMinBits is the size of the smallest filter: 128 KiB, room for
	// 109,000 keys.
	seenMinBits = 1 << 20
)

func newSeenFilter(expected uint) *seenFilter {
	f := &seenFilter{}
	f.grow(expected)
	return f
}

// grow adds a filter with room for at least n keys.
func (f *seenFilter) grow(n uint) {
	bits := uint(seenMinBits)
	for float64(bits) < float64(n)*seenBitsPerKey {
		bits *= 2
	}
	f.filters = append(f.filters, bloom.New(bits, seenHashes))
	f.keys, f.size = 0, capacityOf(bits)
}

// capacityOf is how many keys a filter of bits holds at the intended rate.
func capacityOf(bits uint) uint { return uint(float64(bits) / seenBitsPerKey) }

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

// fold halves the last filter for as long as half of it still holds its
// keys at the intended rate, and returns the bytes given back. A key's
// bits in a filter of m bits are its hashes modulo m, and m is a power
// of two, so in a filter of m/2 bits they are the same positions modulo
// m/2: OR-ing the two halves keeps every key added.
func (f *seenFilter) fold() int {
	i := len(f.filters) - 1
	last := f.filters[i]
	freed := 0
	for bits := last.Cap(); bits >= 2*seenMinBits && f.keys <= capacityOf(bits/2); bits /= 2 {
		words := last.BitSet().Words()
		half := len(words) / 2
		folded := make([]uint64, half)
		for j := range folded {
			folded[j] = words[j] | words[j+half]
		}
		last = bloom.FromWithM(folded, bits/2, last.K())
		freed += 8 * half
	}
	f.filters[i], f.size = last, capacityOf(last.Cap())
	return freed
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
