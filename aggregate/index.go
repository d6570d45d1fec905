package aggregate

import (
	"math"
	"slices"
	"time"

	"github.com/crmpulse/crmpulse"
)

// seriesKey is the unit the state counts for: one user of one source of one
// tenant, acting on one entity.
type seriesKey struct {
	Tenant, Source, User, Entity string
}

// The state counts event times in whole seconds: a stamp is the Unix second
// plus one, so that 0 can mean "no time" (a record's first touch has no
// previous touch). Four bytes cover 1970 to 2106; an event outside is kept
// in the transaction index only and counted in
// crmpulse_state_out_of_range_total.
//
// Periods resolved by crmpulse.Resolve are whole seconds, so counting by
// the second is exact for them. A bound with a fraction of a second is
// rounded up to the next whole second.
func stampOf(t time.Time) (uint32, bool) {
	s := t.Unix()
	if s < 0 || s >= math.MaxUint32-1 {
		return 0, false
	}
	return uint32(s) + 1, true
}

// boundStamp is stampOf for a period bound: rounded up to the second and
// clamped to the stamps' range.
func boundStamp(t time.Time) uint32 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	switch {
	case s < 0:
		return 0
	case s >= math.MaxUint32-1:
		return math.MaxUint32
	}
	return uint32(s) + 1
}

func stampTime(v uint32) time.Time { return time.Unix(int64(v)-1, 0).UTC() }

// series holds every event of one seriesKey as sorted columns of stamps,
// about four bytes an event plus four a touch.
//
// A touch is a created or updated event. prev[i] is the stamp of the same
// record's previous touch (0 for its first), so the distinct records
// touched in [from, to) are exactly the touches in [from, to) whose
// previous touch is before from: each record counts once, at its first
// touch in the range. That makes distinct counts additive over any split
// of the range (hours, days in any zone) without a set per record.
type series struct {
	touch, prev                []uint32
	created, deleted, restored []uint32
	// ends counts the distinct records touched from a stamp on (ends.go).
	ends ends
	// latest is the latest stamp of touch, deleted and restored, or 0.
	latest uint32
	// group is the series' tenant, source and entity, numbered; days are
	// the store's day counts (days.go), which follow every change.
	group uint32
	days  *dayCaches
}

// loaded derives ends from the loaded columns and gives back the room
// the columns grew by while loading.
func (s *series) loaded() {
	s.latest = s.lastStamp()
	s.ends.derive(s.touch, s.prev)
	s.fit()
}

// fit gives back the room the columns grew by and returns how many bytes
// that was. It copies a column only when its room is more than an eighth
// of what it holds, and more than the allocator's size classes would
// round a copy up by, so a column is not copied again for nothing.
func (s *series) fit() int {
	freed := 0
	for _, col := range []*[]uint32{&s.touch, &s.prev, &s.created, &s.deleted, &s.restored,
		&s.ends.lasts, &s.ends.orphans, &s.ends.prevs} {
		if c := *col; cap(c) > fitted(len(c)) {
			*col = slices.Clone(c)
			freed += 4 * (cap(c) - cap(*col))
		}
	}
	return freed
}

// fitted is the most room a column of n stamps keeps after fit.
func fitted(n int) int { return n + n/8 + 16 }

// addTouch inserts a touch at t whose record was last touched at prev.
func (s *series) addTouch(t, prev uint32, created bool) {
	i := upperBound(s.touch, t)
	s.touch = slices.Insert(s.touch, i, t)
	s.prev = slices.Insert(s.prev, i, prev)
	if created {
		s.created = insertSorted(s.created, t)
	}
	s.latest = max(s.latest, t)
	s.ends.addTouch(t, prev, s.touch, s.prev)
	s.days.touch(s.group, t, prev)
}

// setPrev changes the previous touch of one touch at t from old to prev,
// when a late touch lands between the two. Touches with the same (t, prev)
// are interchangeable, so any one of them may change.
func (s *series) setPrev(t, old, prev uint32) bool {
	for i := lowerBound(s.touch, t); i < len(s.touch) && s.touch[i] == t; i++ {
		if s.prev[i] == old {
			s.prev[i] = prev
			s.ends.setPrev(old, prev)
			s.days.repoint(s.group, t, old, prev)
			return true
		}
	}
	return false
}

func (s *series) addOther(a crmpulse.Action, t uint32) {
	s.days.other(s.group, t)
	s.latest = max(s.latest, t)
	if a == crmpulse.Deleted {
		s.deleted = insertSorted(s.deleted, t)
	} else {
		s.restored = insertSorted(s.restored, t)
	}
}

// insertSorted inserts v keeping ts sorted; events mostly arrive in time
// order, so the common case is an append.
func insertSorted(ts []uint32, v uint32) []uint32 {
	if n := len(ts); n == 0 || ts[n-1] <= v {
		return append(ts, v)
	}
	return slices.Insert(ts, upperBound(ts, v), v)
}

// lowerBound returns the index of the first stamp of ts at or after v.
func lowerBound(ts []uint32, v uint32) int {
	if n := len(ts); n == 0 || ts[n-1] < v {
		return n // a period that ends now
	}
	lo, hi := 0, len(ts)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ts[m] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// upperBound returns the index of the first stamp of ts after v.
func upperBound(ts []uint32, v uint32) int {
	lo, hi := 0, len(ts)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ts[m] <= v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func countIn(ts []uint32, from, to uint32) int {
	return lowerBound(ts, to) - lowerBound(ts, from)
}

// countFrom is countIn for a to after every stamp of ts.
func countFrom(ts []uint32, from, _ uint32) int { return len(ts) - lowerBound(ts, from) }

// figures counts the series over [from, to) and, when pts is not nil, adds
// its changes and records to pts' intervals.
func (s *series) figures(from, to uint32, pts *pointCounts) Figures {
	var f Figures
	if from > s.latest {
		return f
	}
	// A period that ends now needs no search for its end.
	count, hi := countFrom, len(s.touch)
	if to <= s.latest {
		count, hi = countIn, lowerBound(s.touch, to)
	}
	lo := lowerBound(s.touch, from)
	touches := hi - lo
	f.Created = count(s.created, from, to)
	f.Updated = touches - f.Created
	f.Deleted = count(s.deleted, from, to)
	f.Restored = count(s.restored, from, to)
	f.Changes = touches + f.Deleted + f.Restored
	if pts == nil {
		// Count the fewer previous touches: the period's, or those after it.
		if after := len(s.touch) - hi; after < touches {
			f.Records = s.ends.from(s.touch, from) - countBelow(s.prev[hi:], from)
		} else {
			f.Records = countBelow(s.prev[lo:hi], from)
		}
		return f
	}
	f.Records = pts.addTouches(s.touch, s.prev, lo, hi, from)
	pts.addOthers(s.deleted, from, to)
	pts.addOthers(s.restored, from, to)
	return f
}

// addPoints adds the series' changes and records in [from, to), which
// is whole intervals of pts, to pts.
func (s *series) addPoints(pts *pointCounts, from, to uint32) {
	lo, hi := lowerBound(s.touch, from), lowerBound(s.touch, to)
	pts.addTouches(s.touch, s.prev, lo, hi, from)
	pts.addOthers(s.deleted, from, to)
	pts.addOthers(s.restored, from, to)
}

// countBelow counts the stamps of ts before v: the distinct records of a
// run of touches whose interval starts at v. Four sums at a time keep the
// processor's adders busy.
func countBelow(ts []uint32, v uint32) int {
	var n0, n1, n2, n3 int
	for len(ts) >= 4 {
		n0 += below(ts[0], v)
		n1 += below(ts[1], v)
		n2 += below(ts[2], v)
		n3 += below(ts[3], v)
		ts = ts[4:]
	}
	for _, t := range ts {
		n0 += below(t, v)
	}
	return n0 + n1 + n2 + n3
}

// last returns the series' latest event stamp before to, or 0.
func (s *series) last(to uint32) uint32 {
	if s.latest < to {
		return s.latest
	}
	var best uint32
	for _, ts := range [][]uint32{s.touch, s.deleted, s.restored} {
		n := len(ts)
		if n > 0 && ts[n-1] < to { // a period that ends now
			best = max(best, ts[n-1])
		} else if i := lowerBound(ts, to); i > 0 {
			best = max(best, ts[i-1])
		}
	}
	return best
}

// pointCounts sums changes and records per interval of a report's series
// for one entity.
type pointCounts struct {
	// starts[i] is the first stamp of interval i, raised to the period's
	// start for the first; a touch counts as a record of its interval when
	// its record's previous touch is before that.
	starts []uint32
	// Intervals are about step seconds long from base (a zone's day is 23
	// to 25 hours), so a stamp's interval is found by division and a step
	// or two.
	base, step       uint32
	changes, records []int
}

// index returns the interval holding stamp t, which is in the period.
func (pc *pointCounts) index(t uint32) int {
	i := 0
	if t > pc.base {
		i = min(int((t-pc.base)/pc.step), len(pc.starts)-1)
	}
	for i > 0 && pc.starts[i] > t {
		i--
	}
	for i+1 < len(pc.starts) && pc.starts[i+1] <= t {
		i++
	}
	return i
}

// end returns the first stamp after interval p.
func (pc *pointCounts) end(p int) uint32 {
	if p+1 < len(pc.starts) {
		return pc.starts[p+1]
	}
	return math.MaxUint32
}

// addTouches adds touch[lo:hi] to the intervals and returns the records
// of the whole period, whose previous touch is before from. It walks the
// touches once, counting without branches and finding a new interval only
// when a touch leaves the current one.
func (pc *pointCounts) addTouches(touch, prev []uint32, lo, hi int, from uint32) int {
	if lo >= hi {
		return 0
	}
	records := 0
	p := pc.index(touch[lo])
	start, next := pc.starts[p], pc.end(p)
	run, runRecords := lo, 0
	for i := lo; i < hi; i++ {
		if t := touch[i]; t >= next {
			pc.changes[p] += i - run
			pc.records[p] += runRecords
			p = pc.index(t)
			start, next = pc.starts[p], pc.end(p)
			run, runRecords = i, 0
		}
		// from is at or before every interval's start.
		runRecords += below(prev[i], start)
		records += below(prev[i], from)
	}
	pc.changes[p] += hi - run
	pc.records[p] += runRecords
	return records
}

// below is 1 when a < b, else 0, without a branch: the previous touches of
// a series are before or after an interval's start in no pattern a
// processor could predict.
func below(a, b uint32) int { return int((uint64(a) - uint64(b)) >> 63) }

func (pc *pointCounts) addOthers(ts []uint32, from, to uint32) {
	lo, hi := lowerBound(ts, from), lowerBound(ts, to)
	if lo >= hi {
		return
	}
	p := pc.index(ts[lo])
	next := pc.end(p)
	for _, t := range ts[lo:hi] {
		if t >= next {
			p = pc.index(t)
			next = pc.end(p)
		}
		pc.changes[p]++
	}
}
