package aggregate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
)

// TestDayCountsFollowApply builds the zones' day counts on a state, then
// applies what changes them in every way (days before and after the ones
// they hold, late touches between a record's touches, groups new since
// they were built, a span too long to keep, the retention) and checks the
// reports against the brute-force count after each step.
func TestDayCountsFollowApply(t *testing.T) {
	defer func(n int) { maxZoneDays = n }(maxZoneDays)
	dir := t.TempDir()
	s, closeDB := openStore(t, dir)
	t.Cleanup(func() { closeDB() })
	rng := rand.New(rand.NewPCG(11, 11))
	mid := time.Date(2026, 3, 25, 0, 0, 0, 0, time.UTC) // Europe's change to summer time is near
	var applied []crmpulse.Event
	offset := int64(0)
	spread := 15
	apply := func(n int, tenant string, from, to time.Time) {
		t.Helper()
		var batch []crmpulse.Event
		for range n {
			e := crmpulse.Event{
				ID: fmt.Sprintf("d%d", offset+int64(len(batch))), Tenant: tenant,
				Source: []string{"hubspot", "salesforce"}[rng.IntN(2)],
				User:   []string{"u1", "u2", "u3", "u4", "Carl", ""}[rng.IntN(6)],
				Entity: []string{"lead", "account"}[rng.IntN(2)], Record: fmt.Sprintf("R%d", rng.IntN(spread)),
				Action: crmpulse.Actions[rng.IntN(len(crmpulse.Actions))],
				At:     from.Add(time.Duration(rng.Int64N(int64(to.Sub(from))))).Truncate(time.Second),
			}
			e.Normalize()
			batch = append(batch, e)
		}
		if _, err := s.Apply(context.Background(), records(offset, batch...)); err != nil {
			t.Fatal(err)
		}
		offset += int64(n)
		applied = append(applied, batch...)
	}
	// As many zones as keep day counts, so that each step reads the counts
	// Apply kept; one more the first time, to drop one.
	zones := []string{"Europe/Madrid", "Asia/Kathmandu", "America/St_Johns", "Australia/Lord_Howe"}
	check := func(step string, more ...string) {
		t.Helper()
		for _, zone := range append(more, zones...) {
			loc := mustLoad(t, zone)
			for _, q := range []Query{
				{Bounds: crmpulse.Bounds{Name: crmpulse.PeriodCustom, From: mid.AddDate(0, 0, -400), To: mid.AddDate(0, 0, 400), Loc: loc}},
				{Bounds: crmpulse.Bounds{Name: crmpulse.PeriodCustom, From: mid.AddDate(0, 0, -20), To: mid.Add(20*24*time.Hour + 5*time.Hour), Loc: loc}},
				{Bounds: crmpulse.Bounds{Name: crmpulse.PeriodCustom, From: midnight(mid.AddDate(0, 0, -9), loc), To: mid.AddDate(0, 0, 9), Loc: loc}, Tenant: "globex"},
			} {
				what := fmt.Sprintf("%s: %s [%s, %s) tenant %q", step, zone, q.Bounds.From.Format(time.RFC3339),
					q.Bounds.To.Format(time.RFC3339), q.Tenant)
				compareReports(t, what, s.Report(q, oraclePeople), oracleReport(applied, q))
			}
		}
		checkLasts(t, s, step)
		checkZones(t, s, step)
		if t.Failed() {
			t.FailNow()
		}
	}

	apply(400, "acme", mid.AddDate(0, 0, -10), mid.AddDate(0, 0, 10))
	check("built", "UTC")
	apply(300, "acme", mid.AddDate(0, 0, -10), mid.AddDate(0, 0, 10))
	check("late touches within the days")
	apply(200, "acme", mid.AddDate(0, 0, -30), mid.AddDate(0, 0, 30))
	check("days before and after")
	apply(200, "globex", mid.AddDate(0, 0, -15), mid.AddDate(0, 0, 15))
	check("new groups")
	// Records touched once each, then the same few again and again: the
	// series' ends change form (ends.go) while Apply adds to them.
	spread = 100_000
	apply(2500, "acme", mid.AddDate(0, 0, -20), mid.AddDate(0, 0, 20))
	check("records touched once")
	spread = 3
	apply(2500, "acme", mid.AddDate(0, 0, -20), mid.AddDate(0, 0, 20))
	check("records touched often")
	spread = 15
	maxZoneDays = 200
	apply(50, "acme", mid.AddDate(0, 0, -300), mid.AddDate(0, 0, 300))
	check("too many days")
	maxZoneDays = 4096
	closeDB()
	s, closeDB = openStore(t, dir)
	check("reopened")
	apply(100, "acme", mid.AddDate(0, 0, -300), mid.AddDate(0, 0, 300))
	check("again")
	s.SetRetention(RetentionDays(60, 0))
	if err := s.Expire(mid); err != nil {
		t.Fatal(err)
	}
	horizon := mid.AddDate(0, 0, -60)
	var kept []crmpulse.Event
	for _, e := range applied {
		if !e.At.Before(horizon) {
			kept = append(kept, e)
		}
	}
	applied = kept
	// After the horizon only: before it distinct records are not kept.
	for _, zone := range zones {
		loc := mustLoad(t, zone)
		q := Query{Bounds: crmpulse.Bounds{Name: crmpulse.PeriodCustom, From: midnight(horizon.AddDate(0, 0, 1), loc), To: mid.AddDate(0, 0, 30), Loc: loc}}
		compareReports(t, "retention "+zone, s.Report(q, oraclePeople), oracleReport(applied, q))
	}
	// Before the horizon too, where the retained previous touches are
	// orphans.
	checkLasts(t, s, "retention")
}

// checkZones checks that the day counts Apply kept are those a zone built
// from the columns now would have, but for days with no events.
func checkZones(t *testing.T, s *Store, step string) {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, z := range s.days.zones {
		if z.dead {
			continue
		}
		fresh := buildZone(s, z.loc)
		count := func(z *zoneDays, g, d int) dayCount {
			if g < len(z.groups) && d < len(z.groups[g]) {
				return z.groups[g][d]
			}
			return dayCount{}
		}
		offset := slices.Index(z.starts, fresh.starts[0])
		if offset < 0 || !slices.Equal(z.starts[offset:offset+len(fresh.starts)], fresh.starts) {
			t.Fatalf("%s: %s: days %v, built %v", step, z.loc, z.starts, fresh.starts)
		}
		for g := range fresh.groups {
			for d := range len(fresh.starts) - 1 {
				if got, want := count(z, g, d+offset), count(fresh, g, d); got != want {
					t.Fatalf("%s: %s: group %d day %d: %+v, built %+v", step, z.loc, g, d, got, want)
				}
			}
		}
	}
}

// checkLasts checks that each series' lasts and orphans count, for every
// stamp, the touches from it whose previous touch is before it.
func checkLasts(t *testing.T, s *Store, step string) {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	for sid, ser := range s.series {
		for _, v := range slices.Concat(ser.touch, ser.prev) {
			for _, v := range []uint32{max(v, 2) - 1, max(v, 1), v + 1} { // stamps start at 1
				if got, want := ser.ends.from(ser.touch, v), countBelow(ser.prev[lowerBound(ser.touch, v):], v); got != want {
					t.Fatalf("%s: series %d: %d records from %d, want %d", step, sid, got, v, want)
				}
			}
		}
	}
}

func midnight(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return crmpulse.Midnight(l.Year(), l.Month(), l.Day(), loc)
}
