package aggregate

import (
	"fmt"
	"testing"
)

// TestSeenFilterNeverForgets adds keys far past the first filter's
// capacity: every key added stays "maybe", and most never added are
// "certainly not".
func TestSeenFilterNeverForgets(t *testing.T) {
	f := newSeenFilter(0)
	const n = 5 * seenMinSize
	for i := range n {
		f.add(fmt.Sprint("key-", i))
	}
	if len(f.filters) < 2 {
		t.Fatalf("%d filters after %d keys, want it to have grown", len(f.filters), n)
	}
	for i := range n {
		if k := fmt.Sprint("key-", i); !f.mayContain(k) {
			t.Fatalf("key %q added but not contained", k)
		}
	}
	var falsePositives int
	for i := range n {
		if f.mayContain(fmt.Sprint("other-", i)) {
			falsePositives++
		}
	}
	// The rate of each filter is 1%; with a few filters, well under 10%.
	if falsePositives > n/10 {
		t.Errorf("%d of %d keys never added are maybe, want under a tenth", falsePositives, n)
	}
}
