package aggregate

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/crmpulse/crmpulse"
)

// Benchmarks of the hot paths. CRMPULSE_BENCH_EVENTS sets how many events
// the report benchmarks load (default 1,000,000), for 1,000 people over the
// year before benchEnd:
//
//	CRMPULSE_BENCH_EVENTS=10000000 go test -run '^$' -bench Report -benchtime 200x -timeout 60m ./aggregate/

var benchEnd = time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC)

const benchPeople = 1000

func benchEvents(b *testing.B) int {
	b.Helper()
	if v := os.Getenv("CRMPULSE_BENCH_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("CRMPULSE_BENCH_EVENTS=%q: %v", v, err)
		}
		return n
	}
	return 1_000_000
}

// benchStream makes events first to first+n of total, of benchPeople
// users in time order over a year, one in fifty of them late by up to a week.
func benchStream(seed uint64, first, n, total int) []crmpulse.Event {
	return benchStreamOf(seed, first, n, total, 300)
}

// benchStreamOf is benchStream with records records per person and entity.
func benchStreamOf(seed uint64, first, n, total, records int) []crmpulse.Event {
	r := rand.New(rand.NewPCG(seed, uint64(first)))
	span := 365 * 24 * time.Hour
	start := benchEnd.Add(-span)
	entities := []string{"lead", "opportunity", "account", "contact"}
	actions := []crmpulse.Action{crmpulse.Created, crmpulse.Updated, crmpulse.Updated, crmpulse.Updated,
		crmpulse.Updated, crmpulse.Updated, crmpulse.Updated, crmpulse.Deleted}
	out := make([]crmpulse.Event, n)
	for i := range out {
		at := start.Add(time.Duration(int64(span) / int64(total+1) * int64(first+i)))
		if r.IntN(50) == 0 {
			at = at.Add(-time.Duration(r.Int64N(int64(7 * 24 * time.Hour))))
		}
		user := r.IntN(benchPeople)
		out[i] = crmpulse.Event{
			ID: fmt.Sprintf("e%d", first+i), Tenant: "acme", Source: "hubspot",
			User: strconv.Itoa(user), Entity: entities[r.IntN(len(entities))],
			Record: fmt.Sprintf("%d-%d", user, r.IntN(records)), Action: actions[r.IntN(len(actions))],
			At: at.Truncate(time.Second),
		}
	}
	return out
}

// indexedPeople resolves by map, as the real directory does, so that the
// benchmark measures the store and not a linear search.
type indexedPeople struct {
	people
	byUser map[string]string
}

func (d indexedPeople) Resolve(source, user string) (string, bool) {
	id, ok := d.byUser[source+"\x00"+user]
	return id, ok
}

func benchDirectory() indexedPeople {
	d := indexedPeople{byUser: map[string]string{}}
	for i := range benchPeople {
		id := fmt.Sprintf("person-%d", i)
		d.people = append(d.people, crmpulse.Person{ID: id, Name: id, IDs: map[string]string{"hubspot": strconv.Itoa(i)}})
		d.byUser["hubspot\x00"+strconv.Itoa(i)] = id
	}
	return d
}

func openBenchStore(b *testing.B, dir string) (*Store, *badger.DB) {
	b.Helper()
	db, err := badger.Open(BadgerOptions(dir))
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	return s, db
}

// TestMain removes the report benchmarks' store, which outlives each
// benchmark so that both periods share it.
func TestMain(m *testing.M) {
	code := m.Run()
	if loaded.db != nil {
		loaded.db.Close()
	}
	if loaded.dir != "" {
		os.RemoveAll(loaded.dir)
	}
	os.Exit(code)
}

// cpuTime is the process's user and system time so far: on a shared
// machine, the CPU an event costs is steadier than the wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serialReportCPU returns the CPU one report takes on one thread, measured
// on that thread alone: what other processes and Badger's compactions do
// on a shared machine does not count.
func serialReportCPU(s *Store, q Query, dir crmpulse.Directory) time.Duration {
	defer func(n int) { parallelTouches = n }(parallelTouches)
	parallelTouches = math.MaxInt
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const runs = 20
	var start, end syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_THREAD, &start)
	for range runs {
		s.Report(q, dir)
	}
	syscall.Getrusage(syscall.RUSAGE_THREAD, &end)
	used := end.Utime.Nano() + end.Stime.Nano() - start.Utime.Nano() - start.Stime.Nano()
	return time.Duration(used / runs)
}

// BenchmarkApply applies batches of 1,000 new events, as a worker does:
// records=300 touches most records for the first time in the run (each
// person's 1,200 records), records=10 touches each record again every few
// dozen events (the history lookup path).
func BenchmarkApply(b *testing.B) {
	for _, records := range []int{300, 10} {
		b.Run(fmt.Sprintf("records=%d", records), func(b *testing.B) { benchApply(b, records) })
	}
}

func benchApply(b *testing.B, records int) {
	s, db := openBenchStore(b, b.TempDir())
	defer db.Close()
	const batch = 1000
	b.ReportAllocs()
	offset := 0
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		recs := make([]crmpulse.Record, batch)
		for i, e := range benchStreamOf(1, offset, batch, 10_000_000, records) {
			recs[i] = crmpulse.Record{Offset: int64(offset + i), Event: e}
		}
		b.StartTimer()
		start := cpuTime()
		if _, err := s.Apply(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - start
		offset += batch
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*batch), "cpu-µs/event")
}

// loaded is the store the report benchmarks share, built once per run.
var loaded struct {
	dir      string
	s        *Store
	db       *badger.DB
	heap     uint64
	rss      uint64
	rssFile  uint64 // of rss, the mapped files' pages (Badger's tables)
	openDur  time.Duration
	loadRate float64 // events/s applied while loading
}

func loadedStore(b *testing.B) *Store {
	b.Helper()
	if loaded.s != nil {
		return loaded.s
	}
	n := benchEvents(b)
	// CRMPULSE_BENCH_DIR keeps the loaded state for the next run, which
	// then only reopens it.
	dir, keep := os.LookupEnv("CRMPULSE_BENCH_DIR")
	if !keep {
		var err error
		if dir, err = os.MkdirTemp("", "crmpulse-bench-"); err != nil {
			b.Fatal(err)
		}
		loaded.dir = dir
	}
	s, db := openBenchStore(b, dir)
	const batch = 1000
	var applying time.Duration
	for off := s.Events(); off < n; off += batch {
		recs := make([]crmpulse.Record, min(batch, n-off))
		for i, e := range benchStream(1, off, len(recs), n) {
			recs[i] = crmpulse.Record{Offset: int64(off + i), Event: e}
		}
		start := time.Now()
		if _, err := s.Apply(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
		applying += time.Since(start)
	}
	if applying > 0 {
		loaded.loadRate = float64(n) / applying.Seconds()
	}
	db.Close()
	// Reopen, as a restart would, and measure what the state holds.
	start := time.Now()
	s, db = openBenchStore(b, dir)
	loaded.openDur = time.Since(start)
	// Return what the load freed, so that RSS is what a restarted server
	// would hold.
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	loaded.s, loaded.db, loaded.heap, loaded.rss = s, db, m.HeapInuse, vmRSS(b)
	loaded.rssFile = procStatus(b, "RssFile:")
	return s
}

// vmRSS returns the process's resident memory from /proc/self/status, or 0
// where there is none.
func vmRSS(b *testing.B) uint64 { return procStatus(b, "VmRSS:") }

// procStatus returns a size field of /proc/self/status in bytes, or 0.
func procStatus(b *testing.B, field string) uint64 {
	b.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func BenchmarkReport(b *testing.B) {
	dir := benchDirectory()
	for _, period := range []string{crmpulse.PeriodLast4Weeks, crmpulse.PeriodYearToDate} {
		b.Run(period, func(b *testing.B) {
			s := loadedStore(b)
			madrid, _ := time.LoadLocation("Europe/Madrid")
			bounds, err := crmpulse.Resolve(period, benchEnd, madrid, crmpulse.DefaultPeriodRules, time.Time{}, time.Time{})
			if err != nil {
				b.Fatal(err)
			}
			// The first report in a zone builds its day counts (days.go).
			start := cpuTime()
			s.Report(Query{Bounds: bounds}, dir)
			first := cpuTime() - start
			serial := serialReportCPU(s, Query{Bounds: bounds}, dir)
			b.ReportAllocs()
			b.ResetTimer()
			start = cpuTime()
			for b.Loop() {
				s.Report(Query{Bounds: bounds}, dir)
			}
			b.ReportMetric(float64((cpuTime()-start).Microseconds())/1000/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(serial.Microseconds())/1000, "serial-cpu-ms/op")
			b.ReportMetric(float64(first.Microseconds())/1000, "first-cpu-ms")
			b.ReportMetric(float64(s.Events()), "events")
			b.ReportMetric(float64(loaded.heap)/(1<<20), "heap-MiB")
			b.ReportMetric(float64(loaded.rss)/(1<<20), "rss-MiB")
			b.ReportMetric(float64(loaded.rssFile)/(1<<20), "rss-file-MiB")
			b.ReportMetric(loaded.loadRate, "load-events/s")
			b.ReportMetric(loaded.openDur.Seconds(), "open-s")
			b.ReportMetric(float64(columnBytes(s))/(1<<20), "columns-MiB")
		})
	}
}

// columnBytes is the memory the in-memory columns hold (with the zones'
// day counts), Badger's caches and memtables aside.
func columnBytes(s *Store) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, z := range s.days.zones {
		n += 4 * cap(z.starts)
		for _, counts := range z.groups {
			n += 12 * cap(counts)
		}
	}
	for _, ser := range s.series {
		n += 4 * (cap(ser.touch) + cap(ser.prev) + cap(ser.created) + cap(ser.deleted) + cap(ser.restored) +
			cap(ser.ends.lasts) + cap(ser.ends.orphans) + cap(ser.ends.prevs))
	}
	return n
}
