package main

import (
	"log/slog"
	"runtime/debug"
	"testing"
)

// sink keeps the compiler from dropping the allocations of makeGarbage.
var sink [][]byte

// makeGarbage allocates n bytes that are garbage at once.
func makeGarbage(n int) {
	for range n >> 20 {
		sink = append(sink, make([]byte, 1<<20))
	}
	sink = nil
}

func TestIdleReleaserGivesBackOnlyWhenQuiet(t *testing.T) {
	// With the collector off, neither a collection nor the runtime's
	// background scavenger frees anything but the releaser's.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	r := newIdleReleaser(slog.New(slog.DiscardHandler), func() int { return 0 })

	makeGarbage(2 * releaseLeast)
	if got := r.tick(); got != 0 {
		t.Fatalf("gave back %d bytes in a tick that allocated %d", got, 2*releaseLeast)
	}
	if h := readHeap(); h.reclaimable() < releaseLeast {
		t.Fatalf("only %d bytes reclaimable after the garbage: the test cannot tell a release", h.reclaimable())
	}
	got := r.tick()
	if got < releaseLeast {
		t.Fatalf("a quiet tick gave back %d bytes, want at least %d", got, releaseLeast)
	}
	if h := readHeap(); h.reclaimable() >= releaseLeast {
		t.Fatalf("%d bytes still reclaimable after a quiet tick", h.reclaimable())
	}
	if again := r.tick(); again != 0 {
		t.Fatalf("a second quiet tick with nothing new to give back collected again (%d bytes)", again)
	}
}
