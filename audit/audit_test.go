package audit

import (
	"io"
	"log/slog"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func TestListNewestFirstInPages(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l := Open(db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, a := range []string{"a", "b", "c", "d", "e"} {
		l.Record(Entry{Actor: a, Action: "view"})
	}
	var got []string
	cursor := ""
	for page := 0; page < 5; page++ {
		items, next, err := l.List(cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range items {
			got = append(got, e.Actor)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if want := "edcba"; join(got) != want {
		t.Errorf("got %q, want %q", join(got), want)
	}
	if _, _, err := l.List("nonsense", 2); err != ErrBadCursor {
		t.Errorf("bad cursor: got %v, want ErrBadCursor", err)
	}
}

func join(s []string) string {
	out := ""
	for _, x := range s {
		out += x
	}
	return out
}
