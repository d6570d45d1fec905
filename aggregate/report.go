package aggregate

import (
	"slices"
	"strings"
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
// matches q's filters.
func (s *Store) Report(q Query, dir crmpulse.Directory) Report {
	b := q.Bounds
	from, to := b.From.UnixNano(), b.To.UnixNano()
	rep := Report{
		Period:            PeriodInfo{Name: b.Name, From: b.From.UTC(), To: b.To.UTC(), TZ: b.Loc.String()},
		Entities:          slices.Clone(crmpulse.Entities),
		Totals:            map[string]Figures{},
		MissingPartitions: []string{},
	}
	rows, order := peopleRows(q, dir)
	byPerson := q.Team != "" || q.Office != ""
	bucket := newBucketer(b)

	s.mu.RLock()
	defer s.mu.RUnlock()
	for k, ser := range s.index.series {
		if !q.matchSeries(k) {
			continue
		}
		id, status := RowID(dir, k.Source, k.User)
		if q.User != "" && id != q.User {
			continue
		}
		row := rows[id]
		f := ser.figures(from, to)
		if row == nil {
			if byPerson || status == "" || f.Changes == 0 {
				continue
			}
			row = &Row{ID: id, Status: status, Counts: map[string]Figures{}}
			rows[id] = row
			order = append(order, id)
		}
		total := rep.Totals[k.Entity]
		total.add(f)
		rep.Totals[k.Entity] = total
		counts := row.Counts[k.Entity]
		counts.add(f)
		row.Counts[k.Entity] = counts
		row.Total.Changes += f.Changes
		row.Total.Records += f.Records
		if t, ok := ser.last(to); ok && (row.LastActivity == nil || t > row.LastActivity.UnixNano()) {
			at := time.Unix(0, t).UTC()
			row.LastActivity = &at
		}
		if q.Only == nil {
			bucket.add(k.Entity, ser, from, to)
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
// to two days, else the zone's calendar days.
type bucketer struct {
	b        crmpulse.Bounds
	interval string
	points   map[string]*Point
}

func newBucketer(b crmpulse.Bounds) *bucketer {
	interval := "day"
	if b.To.Sub(b.From) <= 48*time.Hour {
		interval = "hour"
	}
	return &bucketer{b: b, interval: interval, points: map[string]*Point{}}
}

func (bk *bucketer) label(t time.Time) string {
	local := t.In(bk.b.Loc)
	if bk.interval == "hour" {
		return local.Truncate(time.Hour).UTC().Format(time.RFC3339)
	}
	return local.Format(time.DateOnly)
}

func (bk *bucketer) point(label string) *Point {
	p := bk.points[label]
	if p == nil {
		p = &Point{T: label, Changes: map[string]int{}, Records: map[string]int{}}
		bk.points[label] = p
	}
	return p
}

func (bk *bucketer) add(entity string, ser *series, from, to int64) {
	for _, ts := range ser.times {
		lo, _ := slices.BinarySearch(ts, from)
		for _, t := range ts[lo:] {
			if t >= to {
				break
			}
			bk.point(bk.label(time.Unix(0, t))).Changes[entity]++
		}
	}
	for _, ts := range ser.touches {
		lo, _ := slices.BinarySearch(ts, from)
		prev := ""
		for _, t := range ts[lo:] {
			if t >= to {
				break
			}
			// Touches are sorted, so one record's repeats within an
			// interval are adjacent and count once.
			if l := bk.label(time.Unix(0, t)); l != prev {
				bk.point(l).Records[entity]++
				prev = l
			}
		}
	}
}

// series lists every interval of the period in order, empty ones included.
func (bk *bucketer) series() Series {
	out := Series{Interval: bk.interval, Points: []Point{}}
	step := func(t time.Time) time.Time { return t.Add(time.Hour) }
	start := bk.b.From.Truncate(time.Hour)
	if bk.interval == "day" {
		l := bk.b.From.In(bk.b.Loc)
		start = crmpulse.Midnight(l.Year(), l.Month(), l.Day(), bk.b.Loc)
		step = func(t time.Time) time.Time {
			l := t.In(bk.b.Loc)
			return crmpulse.Midnight(l.Year(), l.Month(), l.Day()+1, bk.b.Loc)
		}
	}
	for t := start; t.Before(bk.b.To); t = step(t) {
		out.Points = append(out.Points, *bk.point(bk.label(t)))
	}
	return out
}
