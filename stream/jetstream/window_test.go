package jetstream

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
)

// TestBurstWaitsForRoom appends more events at once, from concurrent
// requests, than the client lets be unacknowledged: every Append succeeds
// and the log holds every event.
func TestBurstWaitsForRoom(t *testing.T) {
	ns, nc, err := StartServer(ServerConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	t.Cleanup(nc.Close)
	l, err := Open(t.Context(), nc, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	const senders, each = 6, 3000 // 18,000 events, more than maxPending
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		wg.Go(func() {
			batch := make([]crmpulse.Event, each)
			for i := range batch {
				batch[i] = crmpulse.Event{Tenant: "t", Source: "api", User: fmt.Sprint(s), Entity: "lead",
					Record: fmt.Sprint(i), Action: crmpulse.Created, At: at}
			}
			errs <- l.Append(t.Context(), batch)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Append: %v", err)
		}
	}
	end, err := l.End(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := end[0], int64(senders*each); got != want {
		t.Errorf("the log ends at %d, want %d", got, want)
	}
}
