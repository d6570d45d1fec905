package aggregate

import (
	"slices"

	"github.com/crmpulse/crmpulse"
)

// seriesKey is the unit the state counts for: one user of one source of one
// tenant, acting on one entity.
type seriesKey struct {
	Tenant, Source, User, Entity string
}

// series holds every event time of one seriesKey, sorted, so that the count
// of any range exact to the nanosecond is two binary searches.
type series struct {
	// times holds event times (Unix ns) by action, in crmpulse.Actions order.
	times [4][]int64
	// touches holds, per record, the times it was created or updated.
	touches map[string][]int64
}

// index is the in-memory view of the applied events. It is not safe for
// concurrent use; Store guards it.
type index struct {
	series map[seriesKey]*series
	events int
}

func newIndex() *index {
	return &index{series: map[seriesKey]*series{}}
}

func (x *index) add(e *crmpulse.Event) {
	k := seriesKey{e.Tenant, e.Source, e.User, e.Entity}
	s := x.series[k]
	if s == nil {
		s = &series{touches: map[string][]int64{}}
		x.series[k] = s
	}
	at := e.At.UnixNano()
	a := e.Action.Index()
	s.times[a] = insertSorted(s.times[a], at)
	if e.Action == crmpulse.Created || e.Action == crmpulse.Updated {
		s.touches[e.Record] = insertSorted(s.touches[e.Record], at)
	}
	x.events++
}

// insertSorted inserts v keeping ts sorted; events mostly arrive in time
// order, so the common case is an append.
func insertSorted(ts []int64, v int64) []int64 {
	if n := len(ts); n == 0 || ts[n-1] <= v {
		return append(ts, v)
	}
	i, _ := slices.BinarySearch(ts, v)
	return slices.Insert(ts, i, v)
}

// countIn returns how many of the sorted ts fall in [from, to).
func countIn(ts []int64, from, to int64) int {
	lo, _ := slices.BinarySearch(ts, from)
	hi, _ := slices.BinarySearch(ts, to)
	return hi - lo
}

// lastBefore returns the latest of the sorted ts before to, and whether
// there is one.
func lastBefore(ts []int64, to int64) (int64, bool) {
	i, _ := slices.BinarySearch(ts, to)
	if i == 0 {
		return 0, false
	}
	return ts[i-1], true
}

// figures counts one series over [from, to).
func (s *series) figures(from, to int64) Figures {
	var f Figures
	f.Created = countIn(s.times[0], from, to)
	f.Updated = countIn(s.times[1], from, to)
	f.Deleted = countIn(s.times[2], from, to)
	f.Restored = countIn(s.times[3], from, to)
	f.Changes = f.Created + f.Updated + f.Deleted + f.Restored
	if f.Created+f.Updated > 0 {
		for _, ts := range s.touches {
			if countIn(ts, from, to) > 0 {
				f.Records++
			}
		}
	}
	return f
}

// last returns the series' latest event time before to.
func (s *series) last(to int64) (int64, bool) {
	var best int64
	found := false
	for _, ts := range s.times {
		if t, ok := lastBefore(ts, to); ok && (!found || t > best) {
			best, found = t, true
		}
	}
	return best, found
}
