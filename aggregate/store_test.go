package aggregate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/crmpulse/crmpulse"
)

// people is a fixed directory for tests.
type people []crmpulse.Person

func (p people) People() []crmpulse.Person { return p }

func (p people) Resolve(source, user string) (string, bool) {
	for _, x := range p {
		if x.ID == user || x.IDs[source] == user {
			return x.ID, true
		}
	}
	return "", false
}

func openStore(t *testing.T, dir string) (*Store, func()) {
	t.Helper()
	return openStoreWith(t, BadgerOptions(dir))
}

// openStoreWith opens the store in a Badger opened with opts.
func openStoreWith(t *testing.T, opts badger.Options) (*Store, func()) {
	t.Helper()
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s, func() { db.Close() }
}

func ev(user, record string, action crmpulse.Action, at string) crmpulse.Event {
	t, _ := time.Parse(time.RFC3339, at)
	e := crmpulse.Event{Tenant: "t", Source: "hubspot", User: user, Entity: "lead", Record: record, Action: action, At: t}
	e.Normalize()
	return e
}

func records(offset int64, events ...crmpulse.Event) []crmpulse.Record {
	var out []crmpulse.Record
	for i, e := range events {
		out = append(out, crmpulse.Record{Partition: 0, Offset: offset + int64(i), Event: e})
	}
	return out
}

func TestApplyOncePerIdentityAndPosition(t *testing.T) {
	dir := t.TempDir()
	s, closeDB := openStore(t, dir)
	ctx := context.Background()
	a := ev("7", "L1", crmpulse.Created, "2026-01-05T10:00:00Z")
	b := ev("7", "L1", crmpulse.Updated, "2026-01-05T11:00:00Z")
	fresh, err := s.Apply(ctx, records(1, a, b, a)) // a repeated in the batch
	if err != nil || len(fresh) != 2 {
		t.Fatalf("first batch: fresh %d, err %v; want 2 new events", len(fresh), err)
	}
	// A redelivery of old offsets, and a new offset repeating an identity.
	if fresh, _ := s.Apply(ctx, records(1, a, b)); len(fresh) != 0 {
		t.Errorf("redelivered offsets gave %d new events", len(fresh))
	}
	if fresh, _ := s.Apply(ctx, records(4, b)); len(fresh) != 0 {
		t.Errorf("a repeated identity at a new offset gave %d new events", len(fresh))
	}
	if got := s.Resume(0); got != 5 {
		t.Errorf("Resume = %d, want 5", got)
	}
	closeDB()

	// The state and the position survive a reopen.
	s, closeDB = openStore(t, dir)
	defer closeDB()
	if got := s.Resume(0); got != 5 {
		t.Errorf("after reopen Resume = %d, want 5", got)
	}
	from, _ := time.Parse(time.RFC3339, "2026-01-05T00:00:00Z")
	q := Query{Bounds: crmpulse.Bounds{Name: "custom", From: from, To: from.Add(24 * time.Hour), Loc: time.UTC}}
	rep := s.Report(q, people{{ID: "Ana", Name: "Ana", IDs: map[string]string{"hubspot": "7"}}, {ID: "Bo", Name: "Bo"}})
	if len(rep.Users) != 2 {
		t.Fatalf("report rows = %d, want 2 (one with zeros)", len(rep.Users))
	}
	want := Figures{Created: 1, Updated: 1, Changes: 2, Records: 1}
	if got := rep.Users[0].Counts["lead"]; rep.Users[0].ID != "Ana" || got != want {
		t.Errorf("Ana's leads = %+v, want %+v", got, want)
	}
	if rep.Users[1].Total.Changes != 0 {
		t.Errorf("Bo has changes %d, want 0", rep.Users[1].Total.Changes)
	}
}

func TestReportRowsForUnmappedAndUnattributed(t *testing.T) {
	s, closeDB := openStore(t, t.TempDir())
	defer closeDB()
	_, err := s.Apply(context.Background(), records(1,
		ev("99", "L1", crmpulse.Created, "2026-01-05T10:00:00Z"),
		ev("", "L2", crmpulse.Created, "2026-01-05T10:00:00Z"),
		ev("98", "L3", crmpulse.Created, "2025-01-05T10:00:00Z"), // outside the period
	))
	if err != nil {
		t.Fatal(err)
	}
	from, _ := time.Parse(time.RFC3339, "2026-01-01T00:00:00Z")
	q := Query{Bounds: crmpulse.Bounds{Name: "custom", From: from, To: from.AddDate(1, 0, 0), Loc: time.UTC}}
	rep := s.Report(q, people{})
	got := map[string]string{}
	for _, u := range rep.Users {
		got[u.ID] = u.Status
	}
	want := map[string]string{"hubspot:99": crmpulse.StatusUnmapped, "unattributed:hubspot": crmpulse.StatusUnattributed}
	if len(got) != len(want) || got["hubspot:99"] != want["hubspot:99"] || got["unattributed:hubspot"] != want["unattributed:hubspot"] {
		t.Errorf("rows = %v, want %v", got, want)
	}
	q.Team = "Central"
	if rep := s.Report(q, people{}); len(rep.Users) != 0 {
		t.Errorf("a team filter kept %d unmapped rows", len(rep.Users))
	}
}

// TestTxnEndKeepsMessagesWhole checks where Apply cuts its transactions:
// never between two records of one offset, the events of one log message.
func TestTxnEndKeepsMessagesWhole(t *testing.T) {
	// offsets builds a batch of runs: sizes[i] records at offset i.
	offsets := func(sizes ...int) []crmpulse.Record {
		var b []crmpulse.Record
		for off, n := range sizes {
			for range n {
				b = append(b, crmpulse.Record{Offset: int64(off)})
			}
		}
		return b
	}
	tests := []struct {
		name  string
		batch []crmpulse.Record
		want  []int // the end of each transaction
	}{
		{"one record per offset", offsets(ones(maxTxnRecords + 5)...), []int{maxTxnRecords, maxTxnRecords + 5}},
		{"a message across the limit", offsets(maxTxnRecords-10, 20, 5), []int{maxTxnRecords - 10, maxTxnRecords + 15}},
		{"a message larger than the limit", offsets(maxTxnRecords+300, 1), []int{maxTxnRecords + 300, maxTxnRecords + 301}},
		{"small", offsets(3, 4), []int{7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			for start := 0; start < len(tt.batch); {
				end := txnEnd(tt.batch, start)
				if end <= start {
					t.Fatalf("txnEnd(%d) = %d, want progress", start, end)
				}
				if end < len(tt.batch) && tt.batch[end].Offset == tt.batch[end-1].Offset {
					t.Errorf("a transaction ends at %d, inside offset %d", end, tt.batch[end].Offset)
				}
				got = append(got, end)
				start = end
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("transactions end at %v, want %v", got, tt.want)
			}
		})
	}
}

// ones returns n ones: a run of n offsets of one record each.
func ones(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = 1
	}
	return out
}

// TestFormatMarks checks which states Open takes: one marked with the
// format before is read and marked anew, one with events and no mark is
// refused.
func TestFormatMarks(t *testing.T) {
	dir := t.TempDir()
	s, closeDB := openStore(t, dir)
	if _, err := s.Apply(context.Background(), records(0, ev("u1", "r1", crmpulse.Created, "2026-03-02T09:00:00Z"))); err != nil {
		t.Fatal(err)
	}
	mark := func(del, set []byte) {
		t.Helper()
		err := s.db.Update(func(txn *badger.Txn) error {
			if err := txn.Delete(del); err != nil {
				return err
			}
			if set == nil {
				return nil
			}
			return txn.Set(set, nil)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	mark(formatKey, formatKey2)
	closeDB()

	s, closeDB = openStore(t, dir)
	if s.Events() != 1 {
		t.Errorf("a state of the format before: %d events, want 1", s.Events())
	}
	err := s.db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get(formatKey2); !errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("the mark before is still there: %v", err)
		}
		_, err := txn.Get(formatKey)
		return err
	})
	if err != nil {
		t.Error(err)
	}
	mark(formatKey, nil)
	closeDB()

	db, err := badger.Open(BadgerOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := Open(db, slog.New(slog.NewTextHandler(io.Discard, nil))); !errors.Is(err, ErrOldState) {
		t.Errorf("a state without a mark: %v, want ErrOldState", err)
	}
}

// TestCursorBelongsToItsPeriod pages through one day's transactions and
// checks that the cursor is refused for another day, and that one this
// server did not hand out is refused as such.
func TestCursorBelongsToItsPeriod(t *testing.T) {
	s, closeDB := openStore(t, t.TempDir())
	defer closeDB()
	var events []crmpulse.Event
	for i := range 10 {
		events = append(events, ev("u1", fmt.Sprint("r", i), crmpulse.Created, fmt.Sprintf("2026-03-0%dT09:%02d:00Z", 2+i%2, i)))
	}
	if _, err := s.Apply(context.Background(), records(0, events...)); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	first, next, err := s.Transactions(customQuery(day, day.AddDate(0, 0, 1)), oraclePeople, "", 2)
	if err != nil || len(first) != 2 || next == "" {
		t.Fatalf("first page: %d items, next %q, %v", len(first), next, err)
	}
	rest, _, err := s.Transactions(customQuery(day, day.AddDate(0, 0, 1)), oraclePeople, next, 10)
	if err != nil || len(rest) != 3 {
		t.Errorf("the same day's next page: %d items, %v; want 3", len(rest), err)
	}
	if _, _, err := s.Transactions(customQuery(day.AddDate(0, 0, 1), day.AddDate(0, 0, 2)), oraclePeople, next, 10); !errors.Is(err, ErrCursorPeriod) {
		t.Errorf("the cursor on the next day: %v, want ErrCursorPeriod", err)
	}
	if _, _, err := s.Transactions(customQuery(day, day.AddDate(0, 0, 1)), oraclePeople, "bm90LWEtY3Vyc29y", 10); !errors.Is(err, ErrBadCursor) {
		t.Errorf("a cursor not handed out: %v, want ErrBadCursor", err)
	}
}

// TestTrimGivesBackRoom checks that the columns grown one event at a time
// are copied without their room, and only once.
func TestTrimGivesBackRoom(t *testing.T) {
	s, closeDB := openStore(t, t.TempDir())
	defer closeDB()
	growColumns(t, s)
	if freed := s.Trim(); freed == 0 {
		t.Fatal("Trim gave back nothing from columns grown by appends")
	}
	checkFitted(t, s)
	if again := s.Trim(); again != 0 {
		t.Errorf("a second Trim gave back %d bytes", again)
	}
}

// TestPartitionsTrimReachesEveryPartition checks that a worker's quiet
// tick trims the store of each partition it holds.
func TestPartitionsTrimReachesEveryPartition(t *testing.T) {
	ps, err := OpenPartitions(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer ps.CloseAll()
	for p := range int32(2) {
		s, err := ps.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		growColumns(t, s)
	}
	if freed := ps.Trim(); freed == 0 {
		t.Fatal("Partitions.Trim gave back nothing")
	}
	for p := range int32(2) {
		checkFitted(t, ps.Store(p))
	}
}

// growColumns applies 1,000 updates of 300 records, so that the columns
// have grown by appends.
func growColumns(t *testing.T, s *Store) {
	t.Helper()
	start := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for i := range 1000 {
		at := start.Add(time.Duration(i) * time.Minute).Format(time.RFC3339)
		e := ev("u1", fmt.Sprint("r", i%300), crmpulse.Updated, at)
		if _, err := s.Apply(context.Background(), records(int64(i), e)); err != nil {
			t.Fatal(err)
		}
	}
}

// checkFitted fails t for a column of s with more room than Trim leaves.
func checkFitted(t *testing.T, s *Store) {
	t.Helper()
	for _, ser := range s.series {
		for _, col := range [][]uint32{ser.touch, ser.prev, ser.ends.lasts, ser.ends.orphans, ser.ends.prevs} {
			if cap(col) > fitted(len(col)) {
				t.Errorf("a column of %d stamps keeps room for %d after Trim", len(col), cap(col))
			}
		}
	}
}
