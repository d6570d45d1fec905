package aggregate

import (
	"time"

	"github.com/crmpulse/crmpulse"
)

// Activity is one report row's latest event time: a person, an unmapped
// SOURCE:USER id or an unattributed:SOURCE row.
type Activity struct {
	ID     string
	Status string // a person's status, or unmapped or unattributed
	Last   time.Time
}

// LastActivity returns the latest event time before to of every person of
// dir that ever acted, and of every unmapped or unattributed row active in
// [from, to); source, when set, counts only that source's events. It reads
// the state through Report, so it costs one report over [from, to).
func (s *Store) LastActivity(dir crmpulse.Directory, source string, from, to time.Time) []Activity {
	q := Query{Source: source, Bounds: crmpulse.Bounds{Name: crmpulse.PeriodCustom, From: from, To: to, Loc: time.UTC}}
	var out []Activity
	for _, r := range s.Report(q, dir).Users {
		if r.LastActivity != nil {
			out = append(out, Activity{ID: r.ID, Status: r.Status, Last: *r.LastActivity})
		}
	}
	return out
}

// SourceActivity returns the latest event time before to of every source
// the state holds. It reads every transaction once, so callers use it to
// learn the sources when they start, not on every evaluation.
func (s *Store) SourceActivity(dir crmpulse.Directory, to time.Time) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	q := Query{Bounds: crmpulse.Bounds{Name: crmpulse.PeriodCustom, From: time.Unix(0, 0), To: to, Loc: time.UTC}}
	err := s.EachTransaction(q, dir, func(t Transaction) bool {
		if _, seen := out[t.Source]; !seen {
			out[t.Source] = t.At // newest first: the first one is the latest
		}
		return true
	})
	return out, err
}
