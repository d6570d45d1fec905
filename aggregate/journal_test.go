package aggregate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
)

// TestFoldSplitsAnEntryTooBigForATransaction grows day chunks until one
// Apply transaction's journal entry touches more chunk bytes than Badger
// takes in a transaction (a memtable of 2 MiB takes about 300 KiB): the
// fold must write them in several, and the reports must still equal the
// oracle's, before and after reopening the state.
func TestFoldSplitsAnEntryTooBigForATransaction(t *testing.T) {
	defer func(n int) { foldOps = n }(foldOps)
	foldOps = 1
	dir := t.TempDir()
	opts := BadgerOptions(dir).WithMemTableSize(2 << 20).WithValueThreshold(64 << 10)
	s, closeDB := openStoreWith(t, opts)

	// 40 series, every event on one day: after 36,000 events each
	// transaction's entry rewrites 40 chunks of about 8 KiB.
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	const users, perBatch, total = 40, 200, 36_000
	var events []crmpulse.Event
	for i := range total {
		e := crmpulse.Event{ID: fmt.Sprint("e", i), Tenant: "t", Source: "hubspot",
			User: fmt.Sprint("u", i%users), Entity: "lead", Record: fmt.Sprint("r", i%500),
			Action: crmpulse.Updated, At: day.Add(time.Duration(i) * time.Second)}
		e.Normalize()
		events = append(events, e)
	}
	for start := 0; start < total; start += perBatch {
		if _, err := s.Apply(context.Background(), records(int64(start), events[start:start+perBatch]...)); err != nil {
			t.Fatalf("Apply at %d: %v", start, err)
		}
	}

	q := customQuery(day, day.Add(24*time.Hour))
	compareReports(t, "after the folds", s.Report(q, oraclePeople), oracleReport(events, q))
	closeDB()
	s, closeDB = openStoreWith(t, opts)
	defer closeDB()
	compareReports(t, "after reopening", s.Report(q, oraclePeople), oracleReport(events, q))
}

// TestFoldCutShortIsReplayedOnce stops a fold half way through its chunks,
// as a crash would, with entries of late touches journaled on top of
// chunks an earlier fold wrote. Reopening must replay each entry only into
// the chunks the fold had not written: the reports equal the oracle's
// after reopening, after the next fold, and after reopening again.
func TestFoldCutShortIsReplayedOnce(t *testing.T) {
	defer func(n, k int) { foldOps, foldInterrupted = n, k }(foldOps, foldInterrupted)
	foldOps = 1 << 30 // the test folds
	dir := t.TempDir()
	s, closeDB := openStore(t, dir)

	// Four days of touches of a few records by the oracle's people, in
	// random order, so that many are late and move a later touch's
	// previous one.
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(7, 7))
	actions := []crmpulse.Action{crmpulse.Created, crmpulse.Updated, crmpulse.Updated, crmpulse.Deleted, crmpulse.Restored}
	var events []crmpulse.Event
	for i := range 6000 {
		e := crmpulse.Event{ID: fmt.Sprint("e", i), Tenant: "t", Source: "hubspot",
			User: oraclePeople[r.IntN(len(oraclePeople))].ID, Entity: "lead", Record: fmt.Sprint("r", r.IntN(300)),
			Action: actions[r.IntN(len(actions))], At: start.Add(time.Duration(r.IntN(4*24*3600)) * time.Second)}
		e.Normalize()
		events = append(events, e)
	}
	apply := func(from, to int) {
		for b := from; b < to; b += 200 {
			if _, err := s.Apply(context.Background(), records(int64(b), events[b:min(b+200, to)]...)); err != nil {
				t.Fatalf("Apply at %d: %v", b, err)
			}
		}
	}
	apply(0, 3000)
	if err := s.fold(); err != nil {
		t.Fatal(err)
	}
	apply(3000, len(events))
	foldInterrupted = 8 // of about 20 chunks: 4 people, 5 days
	if err := s.fold(); !errors.Is(err, errFoldInterrupted) {
		t.Fatalf("fold cut short: %v", err)
	}
	foldInterrupted = -1

	q := customQuery(start.Add(-time.Hour), start.Add(5*24*time.Hour))
	want := oracleReport(events, q)
	closeDB()
	s, closeDB = openStore(t, dir)
	compareReports(t, "after reopening", s.Report(q, oraclePeople), want)
	if len(s.journals) == 0 {
		t.Fatal("no journal left after the fold cut short: the test shows nothing")
	}
	if err := s.fold(); err != nil {
		t.Fatal(err)
	}
	compareReports(t, "after the next fold", s.Report(q, oraclePeople), want)
	closeDB()
	s, closeDB = openStore(t, dir)
	defer closeDB()
	compareReports(t, "after reopening again", s.Report(q, oraclePeople), want)
}
