package aggregate

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
)

// TestFoldSplitsAnEntryTooBigForATransaction grows day chunks until one
// Apply transaction's journal entry touches more chunk bytes than Badger
// takes in a transaction (a memtable of 2 MiB takes about 300 KiB): the
// fold must split the entry, and the reports must still equal the
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
