package main

import (
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// defaultGCPercent is the Go collector's target when neither GOGC nor
// GOMEMLIMIT is set: a collection once the heap has grown by half of what
// was live, not by all of it. The report columns are the largest part
// of a server's live heap at rest (77 MB of 175 at 10M events in make
// bench), so the heap stays within 1.5 times what is live. A soft
// memory limit of 224 MiB held less (253 MiB resident at 10M events
// against 292, before the columns were trimmed), but it made the
// collector run almost without pause twice over: while a backlog is
// applied, when Badger's table builders take 160 MB of the heap (figure 1
// applied 31,600 to 36,000 events/s at 49 to 56 µs of CPU an event under
// it, 60,300 at 27.5 µs with GOGC=50), and at 100 reports a second over
// 10M events (p99 1.5 s against 14 ms). GOMEMLIMIT=224MiB makes the other
// choice.
const defaultGCPercent = 50

func tuneCollector(logger *slog.Logger) {
	_, gogc := os.LookupEnv("GOGC")
	_, limit := os.LookupEnv("GOMEMLIMIT")
	if gogc || limit {
		return
	}
	debug.SetGCPercent(defaultGCPercent)
	logger.Debug("Go collector target set", "gogc", defaultGCPercent)
}

// idleReleaser gives the heap's garbage and free pages back to the
// system when the server has gone quiet. The runtime keeps what the last
// collection freed, and the garbage made since, for as long as the heap
// may grow back to its target, 1.5 times what is live: after a backlog or
// a burst of reports, 100 to 180 MiB more resident memory than the state
// needs (333 to 417 MiB at 10M events in make bench, just after the
// reports, against 233 to 242 MiB once given back), held for as long as the
// server stays quiet. A forced collection of such a heap took 42 ms and
// holds up allocations while the pages are given back, so it is done
// only when the process allocated little in a whole tick and much can be
// given back, and not again until as much is to be had again.
type idleReleaser struct {
	logger *slog.Logger
	// trim gives back room the process keeps for growth (Store.Trim)
	// before the heap is collected; it returns the bytes it gave back.
	trim   func() int
	allocs uint64 // bytes allocated by the process at the last tick
}

const (
	// quietAllocs is the most a process allocates in one tick and is
	// still quiet: a trickle of events and a few views, not a backlog or
	// a wall of reports.
	quietAllocs = 16 << 20
	// releaseLeast is the least garbage and free heap worth a collection
	// to give back.
	releaseLeast = 32 << 20
)

func newIdleReleaser(logger *slog.Logger, trim func() int) *idleReleaser {
	return &idleReleaser{logger: logger, trim: trim, allocs: readHeap().allocs}
}

// tick gives the heap's garbage and free pages back if the process has
// been quiet since the last tick, and returns how many bytes that was.
func (r *idleReleaser) tick() uint64 {
	busy := readHeap().allocs-r.allocs > quietAllocs
	defer func() { r.allocs = readHeap().allocs }()
	if busy {
		return 0
	}
	start := time.Now()
	trimmed := r.trim()
	h := readHeap()
	if h.reclaimable() < releaseLeast {
		return 0
	}
	debug.FreeOSMemory()
	r.logger.Debug("heap given back while quiet", "bytes", h.reclaimable(), "trimmed", trimmed, "took", time.Since(start))
	return h.reclaimable()
}

// heapState is what the runtime says of its heap.
type heapState struct {
	allocs  uint64 // bytes allocated since the process started
	free    uint64 // free pages not given back to the system
	objects uint64 // bytes of objects, live or not yet collected
	live    uint64 // bytes live at the last collection
}

// reclaimable is what a collection and a release would give back: the
// free pages and the objects made since the last collection, less what
// was live at it.
func (h heapState) reclaimable() uint64 {
	return h.free + h.objects - min(h.live, h.objects)
}

func readHeap() heapState {
	s := []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	metrics.Read(s)
	return heapState{allocs: s[0].Value.Uint64(), free: s[1].Value.Uint64(),
		objects: s[2].Value.Uint64(), live: s[3].Value.Uint64()}
}
