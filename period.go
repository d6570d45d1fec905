package crmpulse

import (
	"fmt"
	"strings"
	"time"
)

// Period names accepted by Resolve.
const (
	PeriodToday         = "today"
	PeriodYesterday     = "yesterday"
	PeriodThisWeek      = "this_week"
	PeriodLast7Days     = "last_7_days"
	PeriodLast4Weeks    = "last_4_weeks"
	PeriodMonthToDate   = "month_to_date"
	PeriodQuarterToDate = "quarter_to_date"
	PeriodYearToDate    = "year_to_date"
	PeriodCustom        = "custom"
)

// PeriodNames lists the named periods in the order a picker shows them.
var PeriodNames = []string{
	PeriodToday, PeriodYesterday, PeriodThisWeek, PeriodLast7Days,
	PeriodLast4Weeks, PeriodMonthToDate, PeriodQuarterToDate,
	PeriodYearToDate, PeriodCustom,
}

// Calendar settings that periods depend on.
type PeriodRules struct {
	WeekStart time.Weekday
	// FiscalMonth and FiscalDay are the first day of the fiscal year.
	FiscalMonth time.Month
	FiscalDay   int
}

// DefaultPeriodRules starts weeks on Monday and the fiscal year on January 1.
var DefaultPeriodRules = PeriodRules{WeekStart: time.Monday, FiscalMonth: time.January, FiscalDay: 1}

// Bounds is a resolved period: the instants [From, To) and the zone its
// days are counted in.
type Bounds struct {
	Name string
	From time.Time
	To   time.Time
	Loc  *time.Location
}

// Contains reports whether t falls in the bounds.
func (b Bounds) Contains(t time.Time) bool {
	return !t.Before(b.From) && t.Before(b.To)
}

// Resolve computes the bounds of the named period in loc as of asOf. For
// PeriodCustom it checks and returns [from, to) instead. Bounds are whole
// seconds, the resolution the state counts in: an asOf, from or to with a
// fraction of a second is rounded up to the next second, so that a report
// as of now includes an event of this very second.
func Resolve(name string, asOf time.Time, loc *time.Location, rules PeriodRules, from, to time.Time) (Bounds, error) {
	asOf, from, to = ceilSecond(asOf), ceilSecond(from), ceilSecond(to)
	b := Bounds{Name: name, To: asOf, Loc: loc}
	local := asOf.In(loc)
	y, m, d := local.Date()
	switch name {
	case PeriodCustom:
		if from.IsZero() || to.IsZero() {
			return Bounds{}, fmt.Errorf("period custom needs both from and to")
		}
		if !to.After(from) {
			return Bounds{}, fmt.Errorf("to must be after from")
		}
		b.From, b.To = from, to
	case PeriodToday:
		b.From = Midnight(y, m, d, loc)
	case PeriodYesterday:
		b.From = Midnight(y, m, d-1, loc)
		b.To = Midnight(y, m, d, loc)
	case PeriodThisWeek:
		back := (int(local.Weekday()) - int(rules.WeekStart) + 7) % 7
		b.From = Midnight(y, m, d-back, loc)
	case PeriodLast7Days:
		b.From = Midnight(y, m, d-6, loc)
	case PeriodLast4Weeks:
		b.From = Midnight(y, m, d-27, loc)
	case PeriodMonthToDate:
		b.From = Midnight(y, m, 1, loc)
	case PeriodQuarterToDate:
		b.From = fiscalStart(local, rules, 3, loc)
	case PeriodYearToDate:
		b.From = fiscalStart(local, rules, 12, loc)
	default:
		return Bounds{}, fmt.Errorf("unknown period %q: use one of %s", name, strings.Join(PeriodNames, ", "))
	}
	return b, nil
}

// ceilSecond rounds t up to a whole second.
func ceilSecond(t time.Time) time.Time {
	if t.Nanosecond() == 0 {
		return t
	}
	return t.Truncate(time.Second).Add(time.Second)
}

// fiscalStart returns the midnight that starts the fiscal span of months
// (3 for a quarter, 12 for a year) holding local.
func fiscalStart(local time.Time, rules PeriodRules, months int, loc *time.Location) time.Time {
	y, m, d := local.Date()
	// Months since the fiscal year's first month, counting a date before
	// the fiscal day as part of the previous month.
	since := (int(m) - int(rules.FiscalMonth) + 12) % 12
	if d < rules.FiscalDay {
		since = (since + 11) % 12
	}
	back := since % months
	start := time.Date(y, m-time.Month(back), 1, 12, 0, 0, 0, time.UTC)
	if d < rules.FiscalDay {
		start = start.AddDate(0, -1, 0)
	}
	return Midnight(start.Year(), start.Month(), rules.FiscalDay, loc)
}

// Midnight returns the first instant of the date in loc, which is not 00:00
// where a daylight-saving change skips midnight. Days out of range roll over
// as time.Date does.
func Midnight(y int, m time.Month, d int, loc *time.Location) time.Time {
	t := time.Date(y, m, d, 0, 0, 0, 0, loc)
	// time.Date picks a time after the gap when 00:00 does not exist; it
	// can also land on the day before when the gap starts before midnight.
	want := time.Date(y, m, d, 12, 0, 0, 0, time.UTC)
	if ty, tm, td := t.Date(); ty != want.Year() || tm != want.Month() || td != want.Day() {
		// Walk forward to the first instant of the wanted date.
		for t = t.Truncate(time.Minute); ; t = t.Add(15 * time.Minute) {
			if ty, tm, td := t.In(loc).Date(); ty == want.Year() && tm == want.Month() && td == want.Day() {
				break
			}
		}
	}
	return t
}
