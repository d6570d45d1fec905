package aggregate

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
)

// The oracle test feeds random event streams into the store and checks
// every figure of the report against a brute-force count over the same
// events, written here with plain loops and maps and no code of the
// package's state.

var oracleZones = []string{"UTC", "Europe/Madrid", "America/Santiago", "Asia/Kolkata",
	"Australia/Lord_Howe", "Asia/Kathmandu", "America/St_Johns"}

// transitions returns the instants in [from, to) where loc's offset
// changes, found by walking hours and then narrowing to the second.
func transitions(loc *time.Location, from, to time.Time) []time.Time {
	var out []time.Time
	_, prev := from.In(loc).Zone()
	for t := from; t.Before(to); t = t.Add(time.Hour) {
		if _, off := t.In(loc).Zone(); off != prev {
			lo, hi := t.Add(-time.Hour), t
			for hi.Sub(lo) > time.Second {
				mid := lo.Add(hi.Sub(lo) / 2)
				if _, o := mid.In(loc).Zone(); o == prev {
					lo = mid
				} else {
					hi = mid
				}
			}
			out = append(out, hi)
			prev = off
		}
	}
	return out
}

type oracleGen struct {
	rng   *rand.Rand
	start time.Time
	span  time.Duration
	hot   []time.Time // instants around which events cluster
	past  []crmpulse.Event
}

func newOracleGen(t *testing.T, seed uint64) *oracleGen {
	t.Helper()
	g := &oracleGen{rng: rand.New(rand.NewPCG(seed, seed^0x5eed)),
		start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), span: 2 * 365 * 24 * time.Hour}
	for _, name := range oracleZones {
		loc := mustLoad(t, name)
		g.hot = append(g.hot, transitions(loc, g.start, g.start.Add(g.span))...)
		// Midnights too, where a zone's day starts off the hour.
		for _, d := range []int{0, 40, 200, 400} {
			l := g.start.AddDate(0, 0, d)
			g.hot = append(g.hot, crmpulse.Midnight(l.Year(), l.Month(), l.Day(), loc))
		}
	}
	return g
}

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// instant picks a time: near a hot instant (DST change, odd midnight), or
// anywhere in the span; sometimes with a fraction of a second.
func (g *oracleGen) instant() time.Time {
	var t time.Time
	switch g.rng.IntN(3) {
	case 0:
		t = g.start.Add(time.Duration(g.rng.Int64N(int64(g.span))))
	case 1:
		h := g.hot[g.rng.IntN(len(g.hot))]
		t = h.Add(time.Duration(g.rng.Int64N(int64(6*time.Hour))) - 3*time.Hour)
	default:
		h := g.hot[g.rng.IntN(len(g.hot))]
		t = h.Add(time.Duration(g.rng.IntN(7200)-3600) * time.Second)
	}
	if g.rng.IntN(4) > 0 {
		t = t.Truncate(time.Second)
	}
	return t.UTC()
}

func (g *oracleGen) event(i int) crmpulse.Event {
	r := g.rng
	actions := []crmpulse.Action{crmpulse.Created, crmpulse.Updated, crmpulse.Updated, crmpulse.Updated,
		crmpulse.Deleted, crmpulse.Restored}
	entities := []string{"lead", "opportunity", "account", "contact", "ticket"}
	e := crmpulse.Event{
		ID:     fmt.Sprintf("ev-%d", i),
		Tenant: []string{"acme", "globex"}[r.IntN(2)],
		Source: []string{"hubspot", "salesforce", "api"}[r.IntN(3)],
		User:   []string{"", "u1", "u2", "u3", "u4", "u5", "u6", "Carl"}[r.IntN(8)],
		Entity: entities[r.IntN(len(entities))],
		Record: fmt.Sprintf("R%d", r.IntN(25)),
		Action: actions[r.IntN(len(actions))],
		At:     g.instant(),
	}
	if len(g.past) > 0 && r.IntN(4) == 0 {
		// The same record again within seconds, often in the same second.
		p := g.past[r.IntN(len(g.past))]
		e.Tenant, e.Source, e.User, e.Entity, e.Record = p.Tenant, p.Source, p.User, p.Entity, p.Record
		e.At = p.At.Add(time.Duration(r.IntN(3000)-1000) * time.Millisecond)
	}
	if r.IntN(5) == 0 {
		e.ID = "" // identity derived from the content
	}
	e.Normalize()
	g.past = append(g.past, e)
	return e
}

var oraclePeople = people{
	{ID: "Ana", Name: "Ana", Team: "North", IDs: map[string]string{"hubspot": "u1", "salesforce": "u2"}},
	{ID: "Bo", Name: "Bo", Team: "South", IDs: map[string]string{"hubspot": "u3"}},
	{ID: "Carl", Name: "Carl", Team: "North"}, // matched by his id in any source
	{ID: "Dee", Name: "Dee", Team: "South"},   // never active
}

// oracleRow is the brute-force count's row id for an event.
func oracleRow(e crmpulse.Event) (string, string) {
	if e.User == "" {
		return "unattributed:" + e.Source, crmpulse.StatusUnattributed
	}
	for _, p := range oraclePeople {
		if p.ID == e.User || p.IDs[e.Source] == e.User {
			return p.ID, ""
		}
	}
	return e.Source + ":" + e.User, crmpulse.StatusUnmapped
}

// oracleReport counts the report of q over events with plain loops.
func oracleReport(events []crmpulse.Event, q Query) Report {
	b := q.Bounds
	in := func(t time.Time) bool { return !t.Before(b.From) && t.Before(b.To) }
	rep := Report{Totals: map[string]Figures{}}
	rows := map[string]*Row{}
	team := map[string]string{}
	for _, p := range oraclePeople {
		team[p.ID] = p.Team
		if (q.Team == "" || p.Team == q.Team) && (q.User == "" || p.ID == q.User) {
			rows[p.ID] = &Row{ID: p.ID, Status: crmpulse.StatusActive, Counts: map[string]Figures{}}
		}
	}
	touched := map[string]map[string]bool{} // row, entity -> series records
	daily := map[string]map[string]bool{}   // label, entity -> series records
	changes := map[string]map[string]int{}  // label -> entity -> changes
	match := func(e crmpulse.Event) (string, string, bool) {
		id, status := oracleRow(e)
		return id, status, (q.Tenant == "" || e.Tenant == q.Tenant) && (q.Source == "" || e.Source == q.Source) &&
			(q.Entity == "" || e.Entity == q.Entity) && (q.User == "" || id == q.User) &&
			(q.Team == "" || team[id] == q.Team)
	}
	// Unmapped and unattributed ids get a row when active in the period.
	for _, e := range events {
		if id, status, ok := match(e); ok && in(e.At) && rows[id] == nil {
			rows[id] = &Row{ID: id, Status: status, Counts: map[string]Figures{}}
		}
	}
	for _, e := range events {
		id, _, ok := match(e)
		row := rows[id]
		if !ok || row == nil {
			continue
		}
		at := e.At.Truncate(time.Second)
		if e.At.Before(b.To) && (row.LastActivity == nil || at.After(*row.LastActivity)) {
			row.LastActivity = &at
		}
		if !in(e.At) {
			continue
		}
		f := row.Counts[e.Entity]
		switch e.Action {
		case crmpulse.Created:
			f.Created++
		case crmpulse.Updated:
			f.Updated++
		case crmpulse.Deleted:
			f.Deleted++
		case crmpulse.Restored:
			f.Restored++
		}
		f.Changes++
		label := oracleLabel(b, e.At)
		if changes[label] == nil {
			changes[label] = map[string]int{}
		}
		changes[label][e.Entity]++
		if e.Action == crmpulse.Created || e.Action == crmpulse.Updated {
			rec := fmt.Sprint(e.Tenant, "|", e.Source, "|", e.User, "|", e.Record)
			k := id + "|" + e.Entity
			if touched[k] == nil {
				touched[k] = map[string]bool{}
			}
			if !touched[k][rec] {
				touched[k][rec] = true
				f.Records++
			}
			dk := label + "|" + e.Entity
			if daily[dk] == nil {
				daily[dk] = map[string]bool{}
			}
			daily[dk][rec] = true
		}
		row.Counts[e.Entity] = f
	}
	for _, id := range slices.Sorted(maps.Keys(rows)) {
		row := rows[id]
		for ent, f := range row.Counts {
			row.Total.Changes += f.Changes
			row.Total.Records += f.Records
			t := rep.Totals[ent]
			t.add(f)
			rep.Totals[ent] = t
		}
		rep.Users = append(rep.Users, *row)
	}
	rep.Series = oracleSeries(b, changes, daily)
	return rep
}

// oracleLabel names the interval of the series holding t.
func oracleLabel(b crmpulse.Bounds, t time.Time) string {
	if b.To.Sub(b.From) <= 48*time.Hour {
		return t.UTC().Truncate(time.Hour).Format(time.RFC3339)
	}
	return t.In(b.Loc).Format(time.DateOnly)
}

func oracleSeries(b crmpulse.Bounds, changes map[string]map[string]int, daily map[string]map[string]bool) Series {
	s := Series{Interval: "day"}
	var labels []string
	if b.To.Sub(b.From) <= 48*time.Hour {
		s.Interval = "hour"
		for t := b.From.UTC().Truncate(time.Hour); t.Before(b.To); t = t.Add(time.Hour) {
			labels = append(labels, t.Format(time.RFC3339))
		}
	} else {
		// Every calendar date from From's to the date of the last second.
		first := b.From.In(b.Loc)
		last := b.To.Add(-time.Second).In(b.Loc).Format(time.DateOnly)
		for d := time.Date(first.Year(), first.Month(), first.Day(), 12, 0, 0, 0, time.UTC); ; d = d.AddDate(0, 0, 1) {
			labels = append(labels, d.Format(time.DateOnly))
			if d.Format(time.DateOnly) >= last {
				break
			}
		}
	}
	for _, l := range labels {
		p := Point{T: l, Changes: map[string]int{}, Records: map[string]int{}}
		maps.Copy(p.Changes, changes[l])
		for k, recs := range daily {
			if lbl, ent, _ := cut(k); lbl == l {
				p.Records[ent] = len(recs)
			}
		}
		s.Points = append(s.Points, p)
	}
	return s
}

func cut(k string) (string, string, bool) {
	for i := len(k) - 1; i >= 0; i-- {
		if k[i] == '|' {
			return k[:i], k[i+1:], true
		}
	}
	return k, "", false
}

// randomQuery picks a period (every named one with a random as_of, or a
// custom range to the second), a zone, calendar rules and filters.
func (g *oracleGen) randomQuery(t *testing.T) Query {
	t.Helper()
	r := g.rng
	loc := mustLoad(t, oracleZones[r.IntN(len(oracleZones))])
	rules := crmpulse.PeriodRules{WeekStart: time.Weekday(r.IntN(7)),
		FiscalMonth: time.Month(1 + r.IntN(12)), FiscalDay: 1 + r.IntN(28)}
	name := crmpulse.PeriodNames[r.IntN(len(crmpulse.PeriodNames))]
	var from, to time.Time
	if name == crmpulse.PeriodCustom {
		from = g.instant().Truncate(time.Second)
		lengths := []time.Duration{time.Duration(r.IntN(7200)) * time.Second, 47 * time.Hour,
			time.Duration(r.Int64N(int64(60 * 24 * time.Hour)))}
		to = from.Add(lengths[r.IntN(len(lengths))] + time.Second)
	}
	b, err := crmpulse.Resolve(name, g.instant().Add(time.Duration(r.IntN(1000))*time.Millisecond), loc, rules, from, to)
	if err != nil {
		t.Fatal(err)
	}
	q := Query{Bounds: b}
	switch r.IntN(8) {
	case 0:
		q.Tenant = "acme"
	case 1:
		q.Entity = "lead"
	case 2:
		q.User = "Ana"
	case 3:
		q.Team = "North"
	case 4:
		q.Source = "salesforce"
	}
	return q
}

// compareReports reports every figure of got that differs from want.
func compareReports(t *testing.T, what string, got, want Report) {
	t.Helper()
	gotRows := map[string]Row{}
	for _, u := range got.Users {
		gotRows[u.ID] = u
	}
	if len(got.Users) != len(want.Users) {
		t.Errorf("%s: %d rows, want %d", what, len(got.Users), len(want.Users))
	}
	for _, w := range want.Users {
		g, ok := gotRows[w.ID]
		switch {
		case !ok:
			t.Errorf("%s: no row %s", what, w.ID)
			continue
		case g.Status != w.Status || g.Total != w.Total:
			t.Errorf("%s: row %s status %s total %+v, want %s %+v", what, w.ID, g.Status, g.Total, w.Status, w.Total)
		case !sameTime(g.LastActivity, w.LastActivity):
			t.Errorf("%s: row %s last_activity %v, want %v", what, w.ID, g.LastActivity, w.LastActivity)
		}
		for _, ent := range slices.Sorted(maps.Keys(w.Counts)) {
			if g.Counts[ent] != w.Counts[ent] {
				t.Errorf("%s: row %s %s = %+v, want %+v", what, w.ID, ent, g.Counts[ent], w.Counts[ent])
			}
		}
		for ent, f := range g.Counts {
			if _, ok := w.Counts[ent]; !ok && f != (Figures{}) {
				t.Errorf("%s: row %s %s = %+v, want zeros", what, w.ID, ent, f)
			}
		}
	}
	for ent, w := range want.Totals {
		if got.Totals[ent] != w {
			t.Errorf("%s: totals %s = %+v, want %+v", what, ent, got.Totals[ent], w)
		}
	}
	if got.Series.Interval != want.Series.Interval || len(got.Series.Points) != len(want.Series.Points) {
		t.Errorf("%s: series %s of %d points, want %s of %d", what, got.Series.Interval,
			len(got.Series.Points), want.Series.Interval, len(want.Series.Points))
		return
	}
	for i, w := range want.Series.Points {
		g := got.Series.Points[i]
		if g.T != w.T || !maps.Equal(g.Changes, w.Changes) || !maps.Equal(g.Records, w.Records) {
			t.Errorf("%s: point %d = %+v, want %+v", what, i, g, w)
		}
	}
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// TestReportMatchesOracle applies random streams (duplicates, redelivered
// offsets, disorder, times around daylight-saving changes and off-the-hour
// midnights, sub-second times), reopens the store midway, and checks
// random reports after each step against the brute-force count.
func TestReportMatchesOracle(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			// Fold the journal into the day chunks never, often, and after
			// every Apply transaction.
			defer func(n int) { foldOps = n }(foldOps)
			foldOps = []int{foldOps, 300, 1}[seed]
			// Count the series on one goroutine, and on several.
			defer func(n int) { parallelTouches = n }(parallelTouches)
			parallelTouches = []int{parallelTouches, 1, 50}[seed]
			g := newOracleGen(t, seed)
			dir := t.TempDir()
			s, closeDB := openStore(t, dir)
			t.Cleanup(func() { closeDB() })
			var stream []crmpulse.Event
			for i := range 3000 {
				e := g.event(i)
				stream = append(stream, e)
				if g.rng.IntN(8) == 0 { // a redelivery of an earlier event
					stream = append(stream, stream[g.rng.IntN(len(stream))])
				}
			}
			var applied []crmpulse.Event
			seen := map[string]bool{}
			offset := int64(0)
			for step := 0; len(stream) > 0; step++ {
				n := min(1+g.rng.IntN(900), len(stream))
				recs := records(offset, stream[:n]...)
				if _, err := s.Apply(context.Background(), recs); err != nil {
					t.Fatal(err)
				}
				// The log redelivers part of what was applied.
				if _, err := s.Apply(context.Background(), recs[g.rng.IntN(n):]); err != nil {
					t.Fatal(err)
				}
				for _, e := range stream[:n] {
					if !seen[e.Key()] {
						seen[e.Key()] = true
						applied = append(applied, e)
					}
				}
				offset += int64(n)
				stream = stream[n:]
				switch step % 3 {
				case 1:
					closeDB()
					s, closeDB = openStore(t, dir)
				case 2:
					s.Trim() // the columns copied without their room count the same
				}
				if got, want := s.Events(), len(applied); got != want {
					t.Fatalf("step %d: Events() = %d, want %d", step, got, want)
				}
				for range 25 {
					q := g.randomQuery(t)
					what := fmt.Sprintf("step %d %s [%s, %s) %s filters %+v", step, q.Bounds.Name,
						q.Bounds.From.Format(time.RFC3339), q.Bounds.To.Format(time.RFC3339), q.Bounds.Loc,
						Query{Tenant: q.Tenant, Entity: q.Entity, User: q.User, Team: q.Team, Source: q.Source})
					got := s.Report(q, oraclePeople)
					compareReports(t, what, got, oracleReport(applied, q))
					checkJSON(t, what, got)
				}
				if t.Failed() {
					return
				}
			}
		})
	}
}
