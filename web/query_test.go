package web

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestQueryNamesTheBoundOutOfRange checks that a bound before 1970 is
// refused on its own field, not read as a bound not given.
func TestQueryNamesTheBoundOutOfRange(t *testing.T) {
	s := &Server{cfg: Config{Location: time.UTC}}
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct{ query, field string }{
		{"from=0001-01-01&to=2026-01-01", "from"},
		{"from=2026-01-01&to=0001-01-01T00:00:00Z", "to"},
		{"period=today&as_of=1969-12-31T23:59:59Z", "as_of"},
	} {
		v, _ := url.ParseQuery(c.query)
		_, errs := s.parseQuery(v, now)
		if len(errs) != 1 || errs[0].Field != c.field || !strings.Contains(errs[0].Detail, "1970 to 9999") {
			t.Errorf("%s: errors %+v, want one on %s naming the years", c.query, errs, c.field)
		}
	}
	v, _ := url.ParseQuery("from=1970-01-02&to=2026-01-01")
	if q, errs := s.parseQuery(v, now); len(errs) != 0 || q.Bounds.From.Year() != 1970 {
		t.Errorf("a range from 1970: %+v, %v", q.Bounds, errs)
	}
}

// TestQueryNamesEveryBadParameter checks that a bad tz does not hide a bad
// period or filter: each is named in the one answer.
func TestQueryNamesEveryBadParameter(t *testing.T) {
	s := &Server{cfg: Config{Location: time.UTC}}
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	v, _ := url.ParseQuery("tz=Mars/Olympus&period=fortnight&action=merged")
	_, errs := s.parseQuery(v, now)
	var fields []string
	for _, e := range errs {
		fields = append(fields, e.Field)
	}
	if got := strings.Join(fields, ","); got != "tz,period,action" {
		t.Errorf("fields named %q, want tz,period,action: %+v", got, errs)
	}
	// A bad bound still leaves the period unchecked: it cannot be told
	// from a custom range with a bound missing.
	v, _ = url.ParseQuery("from=yesterday&to=2026-01-01")
	if _, errs := s.parseQuery(v, now); len(errs) != 1 || errs[0].Field != "from" {
		t.Errorf("a bad from: %+v, want one error on from", errs)
	}
}
