package web

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/aggregate"
)

// parseQuery reads a report's query parameters (period, tz, as_of, from,
// to and the filters) as of now.
func (s *Server) parseQuery(v url.Values, now time.Time) (aggregate.Query, []crmpulse.FieldError) {
	var errs []crmpulse.FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, crmpulse.FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
	}
	loc := s.cfg.Location
	if tz := v.Get("tz"); tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil {
			bad("tz", "%q is not an IANA time zone name", tz)
		} else {
			loc = l
		}
	}
	// An instant, or a calendar date meaning its first instant in the zone,
	// in the years events may have (crmpulse.Event.Validate); the zero time
	// when the parameter is not given.
	instant := func(name string) time.Time {
		raw := v.Get(name)
		if raw == "" {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339Nano, raw)
		if d, derr := time.Parse(time.DateOnly, raw); derr == nil {
			t, err = crmpulse.Midnight(d.Year(), d.Month(), d.Day(), loc), nil
		}
		switch {
		case err != nil:
			bad(name, "%q is neither an RFC 3339 instant nor a YYYY-MM-DD date", raw)
		case t.Year() < 1970 || t.Year() > 9999:
			bad(name, "%q is outside the years 1970 to 9999", raw)
		default:
			return t
		}
		return time.Time{}
	}
	asOf := now
	if t := instant("as_of"); !t.IsZero() {
		asOf = t
	}
	from, to := instant("from"), instant("to")
	// A bad tz leaves the configured zone, in which the period is still
	// checked; a bad bound leaves nothing to check it with.
	badBounds := slices.ContainsFunc(errs, func(e crmpulse.FieldError) bool { return e.Field != "tz" })
	period := v.Get("period")
	if period == "" {
		period = crmpulse.PeriodToday
		if !from.IsZero() || !to.IsZero() {
			period = crmpulse.PeriodCustom
		}
	}
	var q aggregate.Query
	if !badBounds {
		b, err := crmpulse.Resolve(period, asOf, loc, s.cfg.Rules, from, to)
		if err != nil {
			bad("period", "%v", err)
		}
		q.Bounds = b
	}
	if a := v.Get("action"); a != "" && crmpulse.Action(a).Index() < 0 {
		bad("action", "must be one of created, updated, deleted, restored")
	}
	if e := v.Get("entity"); e != "" && !entityName.MatchString(e) {
		bad("entity", "must be lowercase letters, digits and _, starting with a letter")
	}
	q.Tenant, q.Team, q.Office = v.Get("tenant"), v.Get("team"), v.Get("office")
	q.User, q.Entity, q.Source, q.Action = v.Get("user"), v.Get("entity"), v.Get("source"), v.Get("action")
	return q, errs
}

var entityName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// pageLimit reads the limit parameter: default 100, at most 1,000.
func pageLimit(v url.Values) (int, []crmpulse.FieldError) {
	raw := v.Get("limit")
	if raw == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > 1000 {
		return 0, []crmpulse.FieldError{{Field: "limit", Detail: "must be a whole number from 1 to 1000"}}
	}
	return n, nil
}
