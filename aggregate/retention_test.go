package aggregate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/crmpulse/crmpulse"
)

// retentionStream makes n events of a few users and records over the 60
// days before now, in random order.
func retentionStream(rng *rand.Rand, now time.Time, first, n int) []crmpulse.Event {
	actions := []crmpulse.Action{crmpulse.Created, crmpulse.Updated, crmpulse.Updated, crmpulse.Deleted, crmpulse.Restored}
	out := make([]crmpulse.Event, n)
	for i := range out {
		e := crmpulse.Event{
			ID: fmt.Sprintf("r%d", first+i), Tenant: "acme", Source: "hubspot",
			User: []string{"u1", "u3", "u9"}[rng.IntN(3)], Entity: []string{"lead", "deal"}[rng.IntN(2)],
			Record: fmt.Sprintf("R%d", rng.IntN(20)), Action: actions[rng.IntN(len(actions))],
			At: now.Add(-time.Duration(rng.Int64N(int64(60 * 24 * time.Hour)))).Truncate(time.Second),
		}
		e.Normalize()
		out[i] = e
	}
	return out
}

func customQuery(from, to time.Time) Query {
	return Query{Bounds: crmpulse.Bounds{Name: crmpulse.PeriodCustom, From: from, To: to, Loc: time.UTC}}
}

// TestRetentionDropsWhatFallsBehindTheHorizon stores events on both sides
// of the retention horizons, runs the retention pass, and checks what was
// dropped is counted, reports after the horizon are unchanged and exact,
// nothing before it is counted, and a late event before it is refused.
func TestRetentionDropsWhatFallsBehindTheHorizon(t *testing.T) {
	defer func(n int) { foldOps = n }(foldOps)
	foldOps = 200
	now := time.Date(2026, 3, 20, 15, 30, 0, 0, time.UTC)
	horizon := time.Date(2026, 2, 18, 0, 0, 0, 0, time.UTC) // 30 days back, to the UTC day
	txHorizon := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(7, 7))
	dir := t.TempDir()
	s, closeDB := openStore(t, dir)
	t.Cleanup(func() { closeDB() })
	s.SetRetention(RetentionDays(30, 10))

	events := retentionStream(rng, now, 0, 3000)
	for i := 0; i < len(events); i += 500 {
		if _, err := s.Apply(context.Background(), records(int64(i), events[i:i+500]...)); err != nil {
			t.Fatal(err)
		}
	}
	var kept []crmpulse.Event
	wantEvents, wantTx := 0, 0
	for _, e := range events {
		if e.At.Before(horizon) {
			wantEvents++
		} else {
			kept = append(kept, e)
		}
		if e.At.Before(txHorizon) {
			wantTx++
		}
	}
	t.Logf("%d events before the horizon, %d before the transactions' horizon, %d kept", wantEvents, wantTx, len(kept))
	within := []Query{customQuery(horizon, now), customQuery(horizon.Add(36*time.Hour+7*time.Second), now.Add(-time.Hour))}
	before := make([]Report, len(within))
	for i, q := range within {
		before[i] = s.Report(q, oraclePeople)
	}

	if err := s.Expire(now); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(s.metrics.retentionDropped.WithLabelValues("events")); int(got) != wantEvents {
		t.Errorf("events dropped = %v, want %d", got, wantEvents)
	}
	if got := testutil.ToFloat64(s.metrics.retentionDropped.WithLabelValues("transactions")); int(got) != wantTx {
		t.Errorf("transactions dropped = %v, want %d", got, wantTx)
	}
	checkRetained(t, "after the pass", s, within, before, kept, horizon, now)

	// A second pass at the same instant drops nothing more.
	if err := s.Expire(now); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(s.metrics.retentionDropped.WithLabelValues("events")); int(got) != wantEvents {
		t.Errorf("after a second pass events dropped = %v, want %d", got, wantEvents)
	}

	// Late events: before the horizon refused and counted; after it,
	// applied like any other.
	late := retentionStream(rng, now, 10_000, 400)
	fresh, err := s.Apply(context.Background(), records(3000, late...))
	if err != nil {
		t.Fatal(err)
	}
	refused, stripped := 0, 0
	for _, e := range late {
		switch {
		case e.At.Before(horizon):
			refused++
		case e.At.Before(txHorizon):
			stripped++
			kept = append(kept, e)
		default:
			kept = append(kept, e)
		}
	}
	if got := testutil.ToFloat64(s.metrics.retentionDropped.WithLabelValues("transactions")); int(got) != wantTx+stripped {
		t.Errorf("transactions dropped = %v, want %d", got, wantTx+stripped)
	}
	t.Logf("late events: %d refused, %d without details", refused, stripped)
	if len(fresh) != len(late)-refused {
		t.Errorf("late batch: %d new events, want %d", len(fresh), len(late)-refused)
	}
	if got := testutil.ToFloat64(s.metrics.lateDropped); int(got) != refused {
		t.Errorf("late dropped = %v, want %d", got, refused)
	}
	for i, q := range within {
		before[i] = oracleReport(kept, q)
	}
	checkRetained(t, "after late events", s, within, before, kept, horizon, now)

	// The state reopens to the same figures.
	closeDB()
	s, closeDB = openStore(t, dir)
	checkRetained(t, "after a reopen", s, within, before, kept, horizon, now)
	if got := s.Events(); got != len(kept) {
		t.Errorf("after a reopen Events() = %d, want %d", got, len(kept))
	}
}

// checkRetained compares reports within the horizon with want and with the
// oracle over the kept events, checks a period across the horizon counts
// the kept changes only, and that the transaction list holds exactly the
// events after the transactions' horizon.
func checkRetained(t *testing.T, what string, s *Store, within []Query, want []Report, kept []crmpulse.Event, horizon, now time.Time) {
	t.Helper()
	for i, q := range within {
		got := s.Report(q, oraclePeople)
		compareReports(t, fmt.Sprintf("%s: period %d vs before", what, i), got, want[i])
		compareReports(t, fmt.Sprintf("%s: period %d vs oracle", what, i), got, oracleReport(kept, q))
	}
	// Across the horizon, changes are the kept events'; distinct records
	// before the horizon are not kept, so they are not compared.
	q := customQuery(horizon.AddDate(0, 0, -20), now)
	got, oracle := s.Report(q, oraclePeople), oracleReport(kept, q)
	for ent, w := range oracle.Totals {
		if g := got.Totals[ent]; g.Changes != w.Changes || g.Created != w.Created || g.Deleted != w.Deleted {
			t.Errorf("%s: across the horizon %s = %+v, want changes of %+v", what, ent, g, w)
		}
	}
	n := 0
	err := s.EachTransaction(customQuery(time.Unix(0, 0), now.Add(time.Hour)), oraclePeople, func(tx Transaction) bool {
		if tx.At.Before(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("%s: transaction %s at %s listed past its retention", what, tx.ID, tx.At)
		}
		n++
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	want10 := 0
	for _, e := range kept {
		if !e.At.Before(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)) {
			want10++
		}
	}
	if n != want10 {
		t.Errorf("%s: %d transactions listed, want %d", what, n, want10)
	}
}
