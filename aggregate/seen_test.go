package aggregate

import (
	"fmt"
	"testing"
)

// falsePositives counts the keys never added, of n, that f says it may
// hold.
func falsePositives(f *seenFilter, n int) int {
	count := 0
	for i := range n {
		if f.mayContain(fmt.Sprint("other-", i)) {
			count++
		}
	}
	return count
}

// containsAll fails t unless f may hold each of the first n keys added.
func containsAll(t *testing.T, f *seenFilter, n int) {
	t.Helper()
	for i := range n {
		if k := fmt.Sprint("key-", i); !f.mayContain(k) {
			t.Fatalf("key %q added but not contained", k)
		}
	}
}

// TestSeenFilterNeverForgets adds keys far past the first filter's
// capacity: every key added stays "maybe", and most never added are
// "certainly not".
func TestSeenFilterNeverForgets(t *testing.T) {
	f := newSeenFilter(0)
	n := int(5 * capacityOf(seenMinBits))
	for i := range n {
		f.add(fmt.Sprint("key-", i))
	}
	if len(f.filters) < 2 {
		t.Fatalf("%d filters after %d keys, want it to have grown", len(f.filters), n)
	}
	containsAll(t, f, n)
	// The rate of each filter is 1%; with a few filters, well under 10%.
	if fp := falsePositives(f, n); fp > n/10 {
		t.Errorf("%d of %d keys never added are maybe, want under a tenth", fp, n)
	}
}

// TestSeenFilterFoldKeepsKeys folds a filter holding a fifth of its room:
// it shrinks to a quarter, keeps every key, stays near its rate, and
// takes keys on as before.
func TestSeenFilterFoldKeepsKeys(t *testing.T) {
	f := newSeenFilter(4 * capacityOf(seenMinBits))
	if got := f.filters[0].Cap(); got != 4*seenMinBits {
		t.Fatalf("a filter for %d keys has %d bits, want %d", 4*capacityOf(seenMinBits), got, 4*seenMinBits)
	}
	n := int(capacityOf(seenMinBits) * 4 / 5)
	for i := range n {
		f.add(fmt.Sprint("key-", i))
	}
	if freed := f.fold(); freed != 3*seenMinBits/8 {
		t.Errorf("fold gave back %d bytes, want %d", freed, 3*seenMinBits/8)
	}
	if got := f.filters[0].Cap(); got != seenMinBits {
		t.Fatalf("folded to %d bits, want %d", got, seenMinBits)
	}
	containsAll(t, f, n)
	if fp := falsePositives(f, 100_000); fp > 2_000 {
		t.Errorf("%d of 100,000 keys never added are maybe after the fold, want under 2%%", fp)
	}
	if again := f.fold(); again != 0 {
		t.Errorf("a full filter folded again, giving back %d bytes", again)
	}
	// The folded filter fills to its new capacity, then grows.
	full := int(capacityOf(seenMinBits))
	for i := n; i <= full; i++ {
		f.add(fmt.Sprint("key-", i))
	}
	containsAll(t, f, full+1)
	if len(f.filters) != 2 || f.keys != 1 {
		t.Errorf("%d filters, %d keys in the last, after filling the folded one; want 2 and 1", len(f.filters), f.keys)
	}
}
