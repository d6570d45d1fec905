package jetstream

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
)

// TestBurstWaitsForRoom makes more concurrent Appends, each its own
// message, than the client lets be unacknowledged: every Append succeeds
// and the log holds every message.
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
	const appends = maxPending + 1000
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, appends)
	for i := range appends {
		wg.Go(func() {
			errs <- l.Append(t.Context(), []crmpulse.Event{{Tenant: "t", Source: "api", User: "u",
				Entity: "lead", Record: fmt.Sprint(i), Action: crmpulse.Created, At: at}})
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
	if got, want := end[0], int64(appends); got != want {
		t.Errorf("the log ends at %d, want %d", got, want)
	}
}
