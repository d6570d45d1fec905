package crmpulse

import (
	"testing"
	"time"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestResolve(t *testing.T) {
	madrid := mustZone(t, "Europe/Madrid")
	// Wednesday 2026-03-11 15:00 in Madrid.
	asOf := time.Date(2026, 3, 11, 15, 0, 0, 0, madrid)
	april := PeriodRules{WeekStart: time.Sunday, FiscalMonth: time.April, FiscalDay: 1}
	tests := []struct {
		period   string
		rules    PeriodRules
		from, to string
	}{
		{PeriodToday, DefaultPeriodRules, "2026-03-11T00:00:00+01:00", "2026-03-11T15:00:00+01:00"},
		{PeriodYesterday, DefaultPeriodRules, "2026-03-10T00:00:00+01:00", "2026-03-11T00:00:00+01:00"},
		{PeriodThisWeek, DefaultPeriodRules, "2026-03-09T00:00:00+01:00", "2026-03-11T15:00:00+01:00"},
		{PeriodThisWeek, april, "2026-03-08T00:00:00+01:00", "2026-03-11T15:00:00+01:00"},
		{PeriodLast7Days, DefaultPeriodRules, "2026-03-05T00:00:00+01:00", "2026-03-11T15:00:00+01:00"},
		{PeriodLast4Weeks, DefaultPeriodRules, "2026-02-12T00:00:00+01:00", "2026-03-11T15:00:00+01:00"},
		{PeriodMonthToDate, DefaultPeriodRules, "2026-03-01T00:00:00+01:00", "2026-03-11T15:00:00+01:00"},
		{PeriodQuarterToDate, DefaultPeriodRules, "2026-01-01T00:00:00+01:00", "2026-03-11T15:00:00+01:00"},
		{PeriodQuarterToDate, april, "2026-01-01T00:00:00+01:00", "2026-03-11T15:00:00+01:00"},
		{PeriodYearToDate, DefaultPeriodRules, "2026-01-01T00:00:00+01:00", "2026-03-11T15:00:00+01:00"},
		{PeriodYearToDate, april, "2025-04-01T00:00:00+02:00", "2026-03-11T15:00:00+01:00"},
	}
	for _, tt := range tests {
		t.Run(tt.period, func(t *testing.T) {
			b, err := Resolve(tt.period, asOf, madrid, tt.rules, time.Time{}, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			from, _ := time.Parse(time.RFC3339, tt.from)
			to, _ := time.Parse(time.RFC3339, tt.to)
			if !b.From.Equal(from) || !b.To.Equal(to) {
				t.Errorf("got [%s, %s), want [%s, %s)", b.From, b.To, from, to)
			}
		})
	}
}

// TestMidnightAcrossDaylightSaving checks days of 23 and 25 hours, and a
// zone whose clocks skip midnight itself.
func TestMidnightAcrossDaylightSaving(t *testing.T) {
	tests := []struct {
		zone  string
		day   time.Time
		hours float64
	}{
		{"Europe/Madrid", time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC), 23},
		{"Europe/Madrid", time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC), 25},
		{"America/Santiago", time.Date(2026, 9, 6, 0, 0, 0, 0, time.UTC), 23}, // 00:00 does not exist
		{"Asia/Kolkata", time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC), 24},
	}
	for _, tt := range tests {
		t.Run(tt.zone, func(t *testing.T) {
			loc := mustZone(t, tt.zone)
			y, m, d := tt.day.Date()
			start, end := Midnight(y, m, d, loc), Midnight(y, m, d+1, loc)
			if got := end.Sub(start).Hours(); got != tt.hours {
				t.Errorf("day %s in %s lasts %v hours, want %v", tt.day.Format(time.DateOnly), tt.zone, got, tt.hours)
			}
			if ly, lm, ld := start.In(loc).Date(); ly != y || lm != m || ld != d {
				t.Errorf("midnight %s is not on %s", start.In(loc), tt.day.Format(time.DateOnly))
			}
			if ly, lm, ld := start.Add(-time.Nanosecond).In(loc).Date(); ly == y && lm == m && ld == d {
				t.Errorf("the instant before midnight %s is on the same day", start.In(loc))
			}
		})
	}
}

func TestResolveCustom(t *testing.T) {
	from := time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := Resolve(PeriodCustom, time.Now(), time.UTC, DefaultPeriodRules, from, from); err == nil {
		t.Error("an empty custom range was accepted")
	}
	if _, err := Resolve("fortnight", time.Now(), time.UTC, DefaultPeriodRules, time.Time{}, time.Time{}); err == nil {
		t.Error("an unknown period was accepted")
	}
}

func TestIdentityIgnoresOffset(t *testing.T) {
	at := time.Date(2017, 3, 1, 9, 30, 0, 0, time.UTC)
	a := Event{Tenant: "t", Source: "api", Entity: "lead", Record: "L1", Action: Created, At: at}
	b := a
	b.At = at.In(time.FixedZone("x", 3600))
	if a.Identity() != b.Identity() {
		t.Error("the same instant written with another offset has another identity")
	}
	c := a
	c.Action = Updated
	if a.Identity() == c.Identity() {
		t.Error("a different action has the same identity")
	}
}
