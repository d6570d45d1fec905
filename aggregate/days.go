package aggregate

import (
	"slices"
	"sync"
	"time"

	"github.com/crmpulse/crmpulse"
)

// A report over a long period sums its series' changes and distinct
// records per calendar day of its zone. Walking every touch of the period
// for that is most of a year-to-date report's cost, so the store keeps,
// for the few zones reports ask for, each group's counts per calendar day,
// built from the columns at the first report in the zone and kept up to
// date by Apply. A report whose rows take every series of the groups it
// reads (no person filter) sums those days instead of walking the touches,
// and walks only the days the period cuts (the first and the last).
//
// A group is the series of one tenant, source and entity: the filters a
// report may apply without picking people. The day counts are derived
// state, never written to Badger.

// maxZoneDays bounds the days a zone keeps: a state whose events span more
// (about eleven years) is reported by walking its touches. Tests lower it.
var maxZoneDays = 4096

// maxZones is how many zones keep day counts; the least recently asked is
// dropped for a new one.
const maxZones = 4

// dayCount is one group's events on one day of a zone.
type dayCount struct {
	// touches are the created and updated events; records those of them
	// whose record's previous touch is before the day, so that each
	// record counts once a day; others the deleted and restored events.
	touches, records, others uint32
}

// zoneDays holds every group's counts per calendar day of one zone.
type zoneDays struct {
	loc *time.Location
	// starts[i] is the first stamp of day i, and the last entry ends the
	// last day.
	starts []uint32
	// groups[g][i] are group g's counts on day i; a group's slice stops at
	// its last day with events.
	groups [][]dayCount
	used   uint64 // dayCaches.clock when a report last read it
	// dead marks a zone that Apply would have grown past maxZoneDays: its
	// counts stop and reports no longer read it.
	dead bool
}

// dayCaches holds the zones that keep day counts. Apply changes their
// counts under Store.mu held for writing; reports read them under
// Store.mu held for reading, and mu serializes reports that add or drop
// a zone.
type dayCaches struct {
	mu    sync.Mutex
	zones []*zoneDays
	clock uint64
}

// reset drops every zone, to be built again when asked; the caller holds
// Store.mu for writing. Retention does this rather than trimming each day.
func (dc *dayCaches) reset() { dc.zones = nil }

// touch counts a touch at t of group g whose record's previous touch is
// prev.
func (dc *dayCaches) touch(g, t, prev uint32) {
	for _, z := range dc.zones {
		if c, start := z.at(g, t); c != nil {
			c.touches++
			c.records += uint32(below(prev, start))
		}
	}
}

// repoint moves the previous touch of a touch at t of group g from old to
// prev.
func (dc *dayCaches) repoint(g, t, old, prev uint32) {
	for _, z := range dc.zones {
		if c, start := z.at(g, t); c != nil {
			c.records = uint32(int(c.records) + below(prev, start) - below(old, start))
		}
	}
}

// other counts a deleted or restored event at t of group g.
func (dc *dayCaches) other(g, t uint32) {
	for _, z := range dc.zones {
		if c, _ := z.at(g, t); c != nil {
			c.others++
		}
	}
}

// zone returns the day counts of loc, building them from the columns when
// no zone of loc's name keeps them, or nil when the state spans too many
// days. The caller holds Store.mu for reading.
func (dc *dayCaches) zone(s *Store, loc *time.Location) *zoneDays {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	dc.clock++
	dc.zones = slices.DeleteFunc(slices.Clone(dc.zones), func(z *zoneDays) bool { return z.dead })
	for _, z := range dc.zones {
		if z.loc.String() == loc.String() {
			z.used = dc.clock
			return z
		}
	}
	z := buildZone(s, loc)
	if z == nil {
		return nil
	}
	z.used = dc.clock
	// A copy, so that a report reading the old list is not disturbed.
	zones := slices.Clone(dc.zones)
	if len(zones) >= maxZones {
		oldest := 0
		for i, o := range zones {
			if o.used < zones[oldest].used {
				oldest = i
			}
		}
		zones = slices.Delete(zones, oldest, oldest+1)
	}
	dc.zones = append(zones, z)
	return z
}

// buildZone counts every group's events per day of loc, or returns nil
// when they span more than maxZoneDays.
func buildZone(s *Store, loc *time.Location) *zoneDays {
	z := &zoneDays{loc: loc, groups: make([][]dayCount, len(s.groupEntity))}
	first, last, any := uint32(0), uint32(0), false
	for _, ser := range s.series {
		for _, ts := range [][]uint32{ser.touch, ser.deleted, ser.restored} {
			if len(ts) == 0 {
				continue
			}
			if !any || ts[0] < first {
				first = ts[0]
			}
			last = max(last, ts[len(ts)-1])
			any = true
		}
	}
	if !any {
		return z
	}
	if !z.cover(first) || !z.cover(last) {
		return nil
	}
	for _, ser := range s.series {
		g := ser.group
		z.grow(g, max(z.day(ser.lastStamp()), 0))
		counts := z.groups[g]
		d := 0
		for i, t := range ser.touch {
			for t >= z.starts[d+1] {
				d++
			}
			counts[d].touches++
			counts[d].records += uint32(below(ser.prev[i], z.starts[d]))
		}
		for _, ts := range [][]uint32{ser.deleted, ser.restored} {
			d := 0
			for _, t := range ts {
				for t >= z.starts[d+1] {
					d++
				}
				counts[d].others++
			}
		}
	}
	return z
}

// lastStamp returns the series' latest event stamp, or 0.
func (s *series) lastStamp() uint32 {
	var best uint32
	for _, ts := range [][]uint32{s.touch, s.deleted, s.restored} {
		if len(ts) > 0 {
			best = max(best, ts[len(ts)-1])
		}
	}
	return best
}

// cover adds days until one holds t, and reports false when that would
// take the zone past maxZoneDays.
func (z *zoneDays) cover(t uint32) bool {
	if len(z.starts) == 0 {
		l := stampTime(t).In(z.loc)
		start := boundStamp(crmpulse.Midnight(l.Year(), l.Month(), l.Day(), z.loc))
		z.starts = []uint32{start, z.next(start)}
	}
	if t < z.starts[0] {
		// The days before, latest first, then moved in front at once.
		var before []uint32
		for first := z.starts[0]; t < first; {
			if len(before)+len(z.starts) > maxZoneDays {
				return false
			}
			l := stampTime(first - 1).In(z.loc)
			first = boundStamp(crmpulse.Midnight(l.Year(), l.Month(), l.Day(), z.loc))
			before = append(before, first)
		}
		slices.Reverse(before)
		z.starts = slices.Concat(before, z.starts)
		for g, counts := range z.groups {
			if len(counts) > 0 {
				z.groups[g] = slices.Concat(make([]dayCount, len(before)), counts)
			}
		}
	}
	for t >= z.starts[len(z.starts)-1] {
		if len(z.starts) > maxZoneDays {
			return false
		}
		z.starts = append(z.starts, z.next(z.starts[len(z.starts)-1]))
	}
	return len(z.starts) <= maxZoneDays+1
}

// next returns the start of the day after the one starting at start.
func (z *zoneDays) next(start uint32) uint32 {
	l := stampTime(start).In(z.loc)
	return boundStamp(crmpulse.Midnight(l.Year(), l.Month(), l.Day()+1, z.loc))
}

// day returns the day holding t, which the zone covers.
func (z *zoneDays) day(t uint32) int { return upperBound(z.starts, t) - 1 }

// grow makes group g's slice hold day d.
func (z *zoneDays) grow(g uint32, d int) {
	if counts := z.groups[g]; len(counts) <= d {
		z.groups[g] = append(counts, make([]dayCount, d+1-len(counts))...)
	}
}

// at returns group g's counts of the day holding t and the day's start,
// adding the day (and the group, for a series new since the zone was
// built) as needed; nil for a dead zone.
func (z *zoneDays) at(g, t uint32) (*dayCount, uint32) {
	if z.dead {
		return nil, 0
	}
	if !z.cover(t) {
		z.dead = true
		return nil, 0
	}
	for int(g) >= len(z.groups) {
		z.groups = append(z.groups, nil)
	}
	d := z.day(t)
	z.grow(g, d)
	return &z.groups[g][d], z.starts[d]
}
