package aggregate

import (
	"encoding/base64"
	"slices"
	"strings"

	"github.com/crmpulse/crmpulse"
)

// Trim drops the rows of r that carry nothing (no counts and no last
// activity): the zero rows of people, which every partition's report has
// and which Merge rebuilds from the directory. It makes a partition's
// answer as small as its activity.
func (r *Report) Trim() {
	r.Users = slices.DeleteFunc(r.Users, func(row Row) bool {
		return row.LastActivity == nil && row.Total == (Total{}) && len(row.Counts) == 0
	})
}

// Merge sums the reports of disjoint parts of the state (log partitions),
// each computed for q, into the report the whole state would give: counts,
// records and series points add, since a series lives in one partition;
// last activity is the latest. Every person of dir matching q has a row, as
// in Report; rows of no person follow, ordered by id. The result is marked
// partial with the missing parts' names when missing is not empty.
func Merge(q Query, dir crmpulse.Directory, parts []Report, missing []string) Report {
	b := q.Bounds
	rep := Report{
		Period:            PeriodInfo{Name: b.Name, From: b.From.UTC(), To: b.To.UTC(), TZ: b.Loc.String()},
		Entities:          slices.Clone(crmpulse.Entities),
		Totals:            map[string]Figures{},
		MissingPartitions: append([]string{}, missing...),
		Partial:           len(missing) > 0,
	}
	rows, order := peopleRows(q, dir)
	people := len(order)
	bk := newBucketer(b, boundStamp(b.From), boundStamp(b.To))
	rep.Series = bk.series()
	for i := range parts {
		part := &parts[i]
		for _, pr := range part.Users {
			row := rows[pr.ID]
			if row == nil {
				row = &Row{ID: pr.ID, Name: pr.Name, Team: pr.Team, Status: pr.Status, Counts: map[string]Figures{}}
				rows[pr.ID] = row
				order = append(order, pr.ID)
			}
			for entity, f := range pr.Counts {
				row.add(entity, f)
			}
			if pr.LastActivity != nil && (row.LastActivity == nil || pr.LastActivity.After(*row.LastActivity)) {
				at := *pr.LastActivity
				row.LastActivity = &at
			}
		}
		for entity, f := range part.Totals {
			total := rep.Totals[entity]
			total.add(f)
			rep.Totals[entity] = total
		}
		addPoints(rep.Series.Points, part.Series.Points)
	}
	slices.Sort(order[people:])
	rep.Users = []Row{}
	for _, id := range order {
		if q.Only == nil || q.Only[id] {
			rep.Users = append(rep.Users, *rows[id])
		}
	}
	for e := range rep.Totals {
		if !slices.Contains(rep.Entities, e) {
			rep.Entities = append(rep.Entities, e)
		}
	}
	return rep
}

// addPoints adds src's interval counts into dst, interval by interval; both
// come from the same query, so their intervals are the same.
func addPoints(dst, src []Point) {
	for i := range min(len(dst), len(src)) {
		for e, n := range src[i].Changes {
			dst[i].Changes[e] += n
		}
		for e, n := range src[i].Records {
			dst[i].Records[e] += n
		}
	}
}

// TransactionCursor returns the cursor that continues a Transactions scan
// of the store holding t right after t.
func TransactionCursor(t Transaction) string {
	return base64.RawURLEncoding.EncodeToString(transactionKey(t))
}

// CompareTransactions orders transactions as Transactions returns them,
// newest first, ties broken the same way in every store: a negative number
// when a comes before b.
func CompareTransactions(a, b Transaction) int {
	return -strings.Compare(string(transactionKey(a)), string(transactionKey(b)))
}

func transactionKey(t Transaction) []byte {
	e := crmpulse.Event{Tenant: t.Tenant, Source: t.Source, ID: t.ID, At: t.At}
	return txKey(&e, e.Key())
}
