package aggregate

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
)

// TestMergeOfPartitionsEqualsOneStore applies one stream to a single store
// and, split by tenant, source and user, to four partition stores, and
// checks that the merged partition reports and transaction pages equal the
// single store's.
func TestMergeOfPartitionsEqualsOneStore(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	whole, closeWhole := openStore(t, t.TempDir())
	defer closeWhole()
	ps, err := OpenPartitions(t.TempDir(), logger)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.CloseAll()
	const n, parts = 3000, 4
	byPart := map[int32][]crmpulse.Record{}
	var all []crmpulse.Record
	actions := []crmpulse.Action{crmpulse.Created, crmpulse.Updated, crmpulse.Updated, crmpulse.Deleted}
	for i := range n {
		e := crmpulse.Event{ID: fmt.Sprintf("e%d", i), Tenant: fmt.Sprintf("t%d", i%2), Source: "api",
			User: fmt.Sprintf("u%d", i%17), Entity: []string{"lead", "opportunity"}[i%2],
			Record: fmt.Sprintf("r%d", i%101), Action: actions[i%4],
			At: time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i*97) * time.Minute)}
		e.Normalize()
		h := fnv.New32a()
		h.Write([]byte(e.Tenant + "\x00" + e.Source + "\x00" + e.User))
		p := int32(h.Sum32() % parts)
		byPart[p] = append(byPart[p], crmpulse.Record{Partition: p, Offset: int64(len(byPart[p])), Event: e})
		all = append(all, crmpulse.Record{Partition: 0, Offset: int64(i), Event: e})
	}
	ctx := context.Background()
	if _, err := whole.Apply(ctx, all); err != nil {
		t.Fatal(err)
	}
	for p := range int32(parts) {
		s, err := ps.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Apply(ctx, byPart[p]); err != nil {
			t.Fatal(err)
		}
	}
	dir := people{{ID: "Ann", Name: "Ann", IDs: map[string]string{"api": "u3"}}, {ID: "Bob", Name: "Bob"}}

	for _, q := range []Query{
		{Bounds: crmpulse.Bounds{Name: "custom", From: time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC), Loc: time.UTC}},
		{Entity: "lead", Bounds: crmpulse.Bounds{Name: "custom", From: time.Date(2017, 2, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2017, 2, 2, 12, 0, 0, 0, time.UTC), Loc: time.UTC}},
	} {
		want := whole.Report(q, dir)
		var reps []Report
		for p := range int32(parts) {
			r := ps.Store(p).Report(q, dir)
			r.Trim()
			reps = append(reps, r)
		}
		got := Merge(q, dir, reps, nil)
		sortRows(&want)
		sortRows(&got)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("merged report differs from the single store's:\n got %+v\nwant %+v", got.Totals, want.Totals)
		}
		missing := Merge(q, dir, reps[1:], []string{"0"})
		if !missing.Partial || len(missing.MissingPartitions) != 1 {
			t.Errorf("merge without partition 0: partial %v, missing %v", missing.Partial, missing.MissingPartitions)
		}
	}

	// Transactions: a newest-first merge of the partitions' pages gives the
	// single store's order.
	q := Query{Bounds: crmpulse.Bounds{Name: "custom", From: time.Unix(0, 0), To: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), Loc: time.UTC}}
	wantTx, _, _ := whole.Transactions(q, dir, "", n)
	var gotTx []Transaction
	for p := range int32(parts) {
		items, _, _ := ps.Store(p).Transactions(q, dir, "", n)
		gotTx = append(gotTx, items...)
	}
	sortTransactions(gotTx)
	if len(gotTx) != len(wantTx) {
		t.Fatalf("%d transactions, want %d", len(gotTx), len(wantTx))
	}
	for i := range wantTx {
		if gotTx[i].ID != wantTx[i].ID {
			t.Fatalf("transaction %d = %s, want %s", i, gotTx[i].ID, wantTx[i].ID)
		}
	}
	// A cursor made from an item continues right after it.
	s := ps.Store(0)
	first, _, _ := s.Transactions(q, dir, "", 5)
	rest, _, _ := s.Transactions(q, dir, TransactionCursor(first[4]), 1)
	all0, _, _ := s.Transactions(q, dir, "", 6)
	if rest[0].ID != all0[5].ID {
		t.Errorf("TransactionCursor continues at %s, want %s", rest[0].ID, all0[5].ID)
	}
}

// sortRows puts the rows of people first in their order, then the others
// by id, as Merge does.
func sortRows(r *Report) {
	var people, others []Row
	for _, row := range r.Users {
		if row.Status == crmpulse.StatusUnmapped || row.Status == crmpulse.StatusUnattributed {
			others = append(others, row)
		} else {
			people = append(people, row)
		}
	}
	slices.SortFunc(others, func(a, b Row) int { return strings.Compare(a.ID, b.ID) })
	r.Users = append(people, others...)
}

func sortTransactions(ts []Transaction) { slices.SortFunc(ts, CompareTransactions) }
