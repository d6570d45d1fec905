package aggregate

import (
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crmpulse/crmpulse"
)

// Query selects the events of a report or a transaction list.
type Query struct {
	Bounds crmpulse.Bounds
	// Filters; empty means all.
	Tenant, Team, Office, User, Entity, Source, Action string
	// Only, when set, restricts the report's rows to these row ids (the
	// rows a live delta carries); totals still cover every row.
	Only map[string]bool
}

// Figures are one row's counts for one entity.
type Figures struct {
	Created  int `json:"created"`
	Updated  int `json:"updated"`
	Deleted  int `json:"deleted"`
	Restored int `json:"restored"`
	Changes  int `json:"changes"`
	Records  int `json:"records"`
}

func (f *Figures) add(g Figures) {
	f.Created += g.Created
	f.Updated += g.Updated
	f.Deleted += g.Deleted
	f.Restored += g.Restored
	f.Changes += g.Changes
	f.Records += g.Records
}

// Total sums a row's figures over entities.
type Total struct {
	Changes int `json:"changes"`
	Records int `json:"records"`
}

// Row is one person of the report, or one unmapped or unattributed user id.
type Row struct {
	ID           string             `json:"id"`
	Name         *string            `json:"name"`
	Team         *string            `json:"team"`
	Status       string             `json:"status"`
	LastActivity *time.Time         `json:"last_activity"`
	Counts       map[string]Figures `json:"counts"`
	Total        Total              `json:"total"`
}

// PeriodInfo is a report's resolved period.
type PeriodInfo struct {
	Name string    `json:"name"`
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	TZ   string    `json:"tz"`
}

// Point is one interval of the report's series.
type Point struct {
	T       string         `json:"t"`
	Changes map[string]int `json:"changes"`
	Records map[string]int `json:"records"`
}

// Series is the report's trend: changes and records per interval.
type Series struct {
	Interval string  `json:"interval"`
	Points   []Point `json:"points"`
}

// Report is the activity report of API.md's GET /v1/report.
type Report struct {
	Period            PeriodInfo         `json:"period"`
	Entities          []string           `json:"entities"`
	Users             []Row              `json:"users"`
	Totals            map[string]Figures `json:"totals"`
	Series            Series             `json:"series"`
	Partial           bool               `json:"partial"`
	MissingPartitions []string           `json:"missing_partitions"`
}

// RowID returns the report row an event's user counts for, and the row's
// status when it is not a person.
func RowID(dir crmpulse.Directory, source, user string) (id, status string) {
	if user == "" {
		return "unattributed:" + source, crmpulse.StatusUnattributed
	}
	if pid, ok := dir.Resolve(source, user); ok {
		return pid, ""
	}
	return source + ":" + user, crmpulse.StatusUnmapped
}

// Report computes the report for q, with a row for every person of dir that
// matches q's filters. It visits every series matching q's tenant, source
// and entity once: O(log n) per series for the counts, plus one pass over
// the series' touches in the period for the distinct records.
func (s *Store) Report(q Query, dir crmpulse.Directory) Report {
	b := q.Bounds
	// Stamps start at 1, so a from of 1 is the same period, and a record's
	// first touch (previous touch 0) counts in it.
	from, to := max(boundStamp(b.From), 1), boundStamp(b.To)
	rep := Report{
		Period:            PeriodInfo{Name: b.Name, From: b.From.UTC(), To: b.To.UTC(), TZ: b.Loc.String()},
		Entities:          slices.Clone(crmpulse.Entities),
		Totals:            map[string]Figures{},
		MissingPartitions: []string{},
	}
	rows, order := peopleRows(q, dir)
	byPerson := q.Team != "" || q.Office != ""
	bucket := newBucketer(b, from, to)

	s.mu.RLock()
	defer s.mu.RUnlock()
	// Each actor resolves to its row once.
	refs := make([]rowRef, len(s.actorKeys))
	resolved := make([]bool, len(s.actorKeys))
	picked := make([]pick, 0, len(s.keys))
	matched := 0
	for sid, k := range s.keys {
		if !q.matchSeries(k) {
			continue
		}
		matched++
		a := s.actorOf[sid]
		if !resolved[a] {
			refs[a].id, refs[a].status = RowID(dir, k.Source, k.User)
			refs[a].row = rows[refs[a].id]
			resolved[a] = true
		}
		ref := &refs[a]
		if q.User != "" && ref.id != q.User {
			continue
		}
		if ref.row == nil && (byPerson || ref.status == "") {
			continue
		}
		picked = append(picked, pick{sid: uint32(sid), ref: ref})
	}
	// A report that reads whole groups sums their day counts.
	var zone *zoneDays
	if q.Only == nil && bucket.interval == "day" && len(picked) == matched {
		zone = s.days.zone(s, b.Loc)
	}
	figs := s.figuresOf(picked, from, to, bucket, q.Only == nil, zone)

	totals := make([]Figures, len(s.entityNames))
	counted := make([]bool, len(s.entityNames))
	for i, pk := range picked {
		f, e := figs[i], s.entityOf[pk.sid]
		row := pk.ref.row
		if row == nil {
			if row = rows[pk.ref.id]; row == nil && f.Changes == 0 {
				continue
			}
			if row == nil {
				row = &Row{ID: pk.ref.id, Status: pk.ref.status, Counts: map[string]Figures{}}
				rows[pk.ref.id] = row
				order = append(order, pk.ref.id)
			}
			pk.ref.row = row
		}
		row.add(s.entityNames[e], f)
		totals[e].add(f)
		counted[e] = true
		if t := s.series[pk.sid].last(to); t > 0 && (row.LastActivity == nil || stampTime(t).After(*row.LastActivity)) {
			at := stampTime(t)
			row.LastActivity = &at
		}
	}
	for e, ok := range counted {
		if ok {
			rep.Totals[s.entityNames[e]] = totals[e]
		}
	}
	for _, id := range order {
		if q.Only == nil || q.Only[id] {
			rep.Users = append(rep.Users, *rows[id])
		}
	}
	if rep.Users == nil {
		rep.Users = []Row{}
	}
	for e := range rep.Totals {
		if !slices.Contains(rep.Entities, e) {
			rep.Entities = append(rep.Entities, e)
		}
	}
	rep.Series = bucket.series()
	return rep
}

// rowRef is the row an actor counts for: its id and status, and the row
// once there is one.
type rowRef struct {
	id, status string
	row        *Row
}

// pick is a series a report reads, and the row it counts for.
type pick struct {
	sid uint32
	ref *rowRef
}

// parallelTouches is the number of touches in a report's series above
// which figuresOf spreads them over the processors; tests lower it.
var parallelTouches = 200_000

// figuresOf counts the picked series over [from, to), adding to bucket's
// intervals when series is set: from zone's day counts for the intervals
// that are whole days of it when zone is not nil, and from the series'
// columns for the others. Over many touches it splits the series among
// the processors, each summing its own intervals, merged at the end. The
// caller holds s.mu for reading.
func (s *Store) figuresOf(picked []pick, from, to uint32, bucket *bucketer, series bool, zone *zoneDays) []Figures {
	figs := make([]Figures, len(picked))
	var days []int
	walks := [][2]uint32{{from, to}}
	if series && zone != nil {
		days, walks = bucket.days(zone, to)
	}
	count := func(bk *bucketer, lo, hi int) {
		byEntity := make([]*pointCounts, len(s.entityNames))
		for i := lo; i < hi; i++ {
			sid := picked[i].sid
			ser := s.series[sid]
			if !series {
				figs[i] = ser.figures(from, to, nil)
				continue
			}
			e := s.entityOf[sid]
			if byEntity[e] == nil {
				byEntity[e] = bk.entity(s.entityNames[e])
			}
			if zone == nil {
				figs[i] = ser.figures(from, to, byEntity[e])
				continue
			}
			figs[i] = ser.figures(from, to, nil)
			for _, w := range walks {
				ser.addPoints(byEntity[e], w[0], w[1])
			}
		}
	}
	touches := 0
	for _, pk := range picked {
		touches += len(s.series[pk.sid].touch)
	}
	workers := min(runtime.GOMAXPROCS(0), 4, touches/parallelTouches+1)
	if workers <= 1 {
		count(bucket, 0, len(picked))
	} else {
		s.countSplit(picked, touches, workers, bucket, count)
	}
	if days != nil {
		s.addDays(picked, zone, days, bucket)
	}
	return figs
}

// countSplit runs count over parts of picked holding about as many
// touches each, on workers goroutines, and merges their intervals into
// bucket.
func (s *Store) countSplit(picked []pick, touches, workers int, bucket *bucketer, count func(*bucketer, int, int)) {
	forks := make([]*bucketer, workers)
	var wg sync.WaitGroup
	lo, acc, w := 0, 0, 0
	for i, pk := range picked {
		acc += len(s.series[pk.sid].touch)
		if i == len(picked)-1 || w < workers-1 && acc >= touches*(w+1)/workers {
			fork, start := bucket.fork(), lo
			forks[w] = fork
			wg.Go(func() { count(fork, start, i+1) })
			lo, w = i+1, w+1
		}
	}
	wg.Wait()
	for _, f := range forks[:w] {
		bucket.merge(f)
	}
}

// addDays adds the day counts of the picked series' groups to the
// intervals that are whole days of zone (days[i] >= 0).
func (s *Store) addDays(picked []pick, zone *zoneDays, days []int, bucket *bucketer) {
	used := make([]bool, len(s.groupEntity))
	for _, pk := range picked {
		used[s.series[pk.sid].group] = true
	}
	for g, ok := range used {
		if !ok || g >= len(zone.groups) {
			continue
		}
		counts := zone.groups[g]
		pc := bucket.entity(s.entityNames[s.groupEntity[g]])
		for i, d := range days {
			if d >= 0 && d < len(counts) {
				c := counts[d]
				pc.changes[i] += int(c.touches + c.others)
				pc.records[i] += int(c.records)
			}
		}
	}
}

func (r *Row) add(entity string, f Figures) {
	if f == (Figures{}) {
		return
	}
	counts := r.Counts[entity]
	counts.add(f)
	r.Counts[entity] = counts
	r.Total.Changes += f.Changes
	r.Total.Records += f.Records
}

// peopleRows returns a zero row for each person matching q, and their order.
func peopleRows(q Query, dir crmpulse.Directory) (map[string]*Row, []string) {
	rows := map[string]*Row{}
	var order []string
	for _, p := range dir.People() {
		if (q.Team != "" && !strings.EqualFold(p.Team, q.Team)) ||
			(q.Office != "" && !strings.EqualFold(p.Office, q.Office)) ||
			(q.User != "" && p.ID != q.User) {
			continue
		}
		row := &Row{ID: p.ID, Name: &p.Name, Status: p.Status, Counts: map[string]Figures{}}
		if p.Team != "" {
			row.Team = &p.Team
		}
		if row.Status == "" {
			row.Status = crmpulse.StatusActive
		}
		rows[p.ID] = row
		order = append(order, p.ID)
	}
	return rows, order
}

func (q *Query) matchSeries(k seriesKey) bool {
	return (q.Tenant == "" || q.Tenant == k.Tenant) &&
		(q.Source == "" || q.Source == k.Source) &&
		(q.Entity == "" || q.Entity == k.Entity)
}

// bucketer sums a report's series per interval: hours for a period of up
// to two days, else the zone's calendar days. Intervals start at whole
// seconds (a zone's midnight always does), so the state's second stamps
// place every event exactly.
type bucketer struct {
	interval   string
	labels     []string
	starts     []uint32
	base, step uint32 // the first interval's nominal start, and its length
	entities   map[string]*pointCounts
}

func newBucketer(b crmpulse.Bounds, from, to uint32) *bucketer {
	bk := &bucketer{interval: "day", step: secondsPerDay, entities: map[string]*pointCounts{}}
	step := func(t time.Time) time.Time {
		l := t.In(b.Loc)
		return crmpulse.Midnight(l.Year(), l.Month(), l.Day()+1, b.Loc)
	}
	label := func(t time.Time) string { return t.In(b.Loc).Format(time.DateOnly) }
	l := b.From.In(b.Loc)
	start := crmpulse.Midnight(l.Year(), l.Month(), l.Day(), b.Loc)
	if b.To.Sub(b.From) <= 48*time.Hour {
		bk.interval, bk.step = "hour", 3600
		step = func(t time.Time) time.Time { return t.Add(time.Hour) }
		label = func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
		start = b.From.Truncate(time.Hour)
	}
	bk.base = boundStamp(start)
	for t := start; t.Before(b.To); t = step(t) {
		bk.labels = append(bk.labels, label(t))
		bk.starts = append(bk.starts, max(boundStamp(t), from))
	}
	return bk
}

// entity returns the interval counts of one entity.
func (bk *bucketer) entity(name string) *pointCounts {
	pc := bk.entities[name]
	if pc == nil {
		n := len(bk.starts)
		pc = &pointCounts{starts: bk.starts, base: bk.base, step: bk.step, changes: make([]int, n), records: make([]int, n)}
		bk.entities[name] = pc
	}
	return pc
}

// days returns, for each interval, the day of z that is exactly it, or
// -1, and the stamp ranges of the intervals that are not whole days of z
// (a period's first and last days when it does not start or end at
// midnight), which the columns count. An interval outside z's days holds
// no events: z covers every event.
func (bk *bucketer) days(z *zoneDays, to uint32) ([]int, [][2]uint32) {
	days := make([]int, len(bk.starts))
	var walks [][2]uint32
	for i, start := range bk.starts {
		end := to
		if i+1 < len(bk.starts) {
			end = bk.starts[i+1]
		}
		j := upperBound(z.starts, start) - 1
		switch {
		case len(z.starts) == 0 || end <= z.starts[0] || start >= z.starts[len(z.starts)-1]:
			days[i] = -1
		case j >= 0 && z.starts[j] == start && z.starts[j+1] == end:
			days[i] = j
		default:
			days[i] = -1
			if n := len(walks); n > 0 && walks[n-1][1] == start {
				walks[n-1][1] = end
			} else {
				walks = append(walks, [2]uint32{start, end})
			}
		}
	}
	return days, walks
}

// fork returns an empty bucketer of the same intervals.
func (bk *bucketer) fork() *bucketer {
	return &bucketer{interval: bk.interval, labels: bk.labels, starts: bk.starts, base: bk.base, step: bk.step,
		entities: map[string]*pointCounts{}}
}

// merge adds o's counts to bk's.
func (bk *bucketer) merge(o *bucketer) {
	for name, pc := range o.entities {
		into := bk.entity(name)
		for i := range pc.changes {
			into.changes[i] += pc.changes[i]
			into.records[i] += pc.records[i]
		}
	}
}

// series lists every interval of the period in order, empty ones included.
func (bk *bucketer) series() Series {
	out := Series{Interval: bk.interval, Points: make([]Point, len(bk.labels))}
	for i, l := range bk.labels {
		p := Point{T: l, Changes: map[string]int{}, Records: map[string]int{}}
		for name, pc := range bk.entities {
			if pc.changes[i] > 0 {
				p.Changes[name] = pc.changes[i]
			}
			if pc.records[i] > 0 {
				p.Records[name] = pc.records[i]
			}
		}
		out.Points[i] = p
	}
	return out
}
