package config

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/crmpulse/crmpulse"
)

// WorkingCalendar is a crmpulse.Calendar read and checked: the days and
// hours that count as working time in one zone.
type WorkingCalendar struct {
	Days     [7]bool
	Hours    [2]time.Duration
	Holidays map[string]bool // YYYY-MM-DD
	Loc      *time.Location
}

// ParseCalendar reads c in loc. Empty fields of c take the values of def
// (which may be nil when c is the default itself). The error names the
// calendar's field.
func ParseCalendar(c, def *crmpulse.Calendar, loc *time.Location) (WorkingCalendar, error) {
	merged := crmpulse.Calendar{}
	if def != nil {
		merged = *def
	}
	if c != nil {
		if c.WorkingDays != nil {
			merged.WorkingDays = c.WorkingDays
		}
		if c.WorkingHours != "" {
			merged.WorkingHours = c.WorkingHours
		}
		if c.Holidays != nil {
			merged.Holidays = c.Holidays
		}
	}
	wc := WorkingCalendar{Holidays: map[string]bool{}, Loc: loc}
	for _, d := range merged.WorkingDays {
		wd, ok := weekdays[strings.ToLower(d)]
		if !ok {
			return wc, fmt.Errorf("working_days: %q must be mon, tue, ... or sun", d)
		}
		wc.Days[wd] = true
	}
	hours, err := ParseHours(merged.WorkingHours)
	if err != nil {
		return wc, fmt.Errorf("working_hours: %w", err)
	}
	wc.Hours = hours
	for _, h := range merged.Holidays {
		if _, err := time.Parse(time.DateOnly, h); err != nil {
			return wc, fmt.Errorf("holidays: %q must be YYYY-MM-DD", h)
		}
		wc.Holidays[h] = true
	}
	return wc, nil
}

func splitHostPort(s string) (string, string, error) { return net.SplitHostPort(s) }
