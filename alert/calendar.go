package alert

import (
	"time"

	"github.com/crmpulse/crmpulse/config"
)

// maxCalendarDays bounds the walk over a calendar with almost no working
// time (every day a holiday), where a threshold is never reached.
const maxCalendarDays = 3660

// never is the instant returned when a threshold is never reached.
var never = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// workingWindow returns the working hours of the calendar day that holds
// local, and whether that day is a working day.
func workingWindow(c *config.WorkingCalendar, local time.Time) (start, end time.Time, ok bool) {
	y, m, d := local.Date()
	day := time.Date(y, m, d, 0, 0, 0, 0, c.Loc)
	if !c.Days[day.Weekday()] || c.Holidays[day.Format(time.DateOnly)] {
		return time.Time{}, time.Time{}, false
	}
	// Wall-clock hours of the day, so a daylight-saving day keeps 09:00
	// to 17:00 however long its night was.
	return clock(day, c.Hours[0]), clock(day, c.Hours[1]), true
}

// clock returns the instant of day whose wall clock reads offset.
func clock(day time.Time, offset time.Duration) time.Time {
	y, m, d := day.Date()
	h, min := int(offset/time.Hour), int(offset%time.Hour/time.Minute)
	return time.Date(y, m, d, h, min, 0, 0, day.Location())
}

// workingAfter returns the instant at which d of working time has passed
// since from, or never.
func workingAfter(c *config.WorkingCalendar, from time.Time, d time.Duration) time.Time {
	local := from.In(c.Loc)
	for range maxCalendarDays {
		if start, end, ok := workingWindow(c, local); ok {
			if from.After(start) {
				start = from
			}
			if avail := end.Sub(start); avail > 0 {
				if d <= avail {
					return start.Add(d)
				}
				d -= avail
			}
		}
		y, m, day := local.Date()
		local = time.Date(y, m, day+1, 0, 0, 0, 0, c.Loc)
	}
	return never
}

// workingBefore returns the latest instant t such that d of working time
// passes between t and to.
func workingBefore(c *config.WorkingCalendar, to time.Time, d time.Duration) time.Time {
	local := to.In(c.Loc)
	for range maxCalendarDays {
		if start, end, ok := workingWindow(c, local); ok {
			if to.Before(end) {
				end = to
			}
			if avail := end.Sub(start); avail > 0 {
				if d <= avail {
					return end.Add(-d)
				}
				d -= avail
			}
		}
		y, m, day := local.Date()
		local = time.Date(y, m, day, 0, 0, 0, 0, c.Loc).Add(-time.Nanosecond)
	}
	return time.Time{}
}
