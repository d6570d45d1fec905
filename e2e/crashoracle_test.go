package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// crashEvent is a canonical event as posted, kept for the oracle.
type crashEvent struct {
	ID     string `json:"id"`
	User   string `json:"user"`
	Entity string `json:"entity"`
	Record string `json:"record"`
	Action string `json:"action"`
	At     string `json:"at"`
	at     time.Time
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q is not a number", name, v)
	}
	return n
}

// crashStream makes n events of 300 users over 2025, out of order within
// a few days, with times around Madrid's daylight-saving changes.
func crashStream(rng *rand.Rand, n int) []crashEvent {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	actions := []string{"created", "updated", "updated", "updated", "deleted", "restored"}
	entities := []string{"lead", "opportunity", "account", "contact"}
	out := make([]crashEvent, n)
	for i := range out {
		at := start.Add(time.Duration(int64(365*24*time.Hour) / int64(n) * int64(i)))
		at = at.Add(time.Duration(rng.Int64N(int64(72*time.Hour))) - 36*time.Hour).Truncate(time.Second)
		user := rng.IntN(300)
		out[i] = crashEvent{
			ID: fmt.Sprintf("c%d", i), User: fmt.Sprintf("u%d", user), Entity: entities[rng.IntN(4)],
			Record: fmt.Sprintf("R%d-%d", user, rng.IntN(150)), Action: actions[rng.IntN(len(actions))],
			at: at, At: at.Format(time.RFC3339),
		}
	}
	return out
}

// crashOracle counts each row's figures per entity in [from, to) by brute
// force: the rows are unmapped users of the api source.
func crashOracle(events []crashEvent, from, to time.Time) map[string]map[string]map[string]int {
	out := map[string]map[string]map[string]int{}
	seen := map[string]bool{}
	for _, e := range events {
		if e.at.Before(from) || !e.at.Before(to) {
			continue
		}
		row := "api:" + e.User
		if out[row] == nil {
			out[row] = map[string]map[string]int{}
		}
		f := out[row][e.Entity]
		if f == nil {
			f = map[string]int{}
			out[row][e.Entity] = f
		}
		f[e.Action]++
		f["changes"]++
		if (e.Action == "created" || e.Action == "updated") && !seen[e.User+e.Entity+e.Record] {
			seen[e.User+e.Entity+e.Record] = true
			f["records"]++
		}
	}
	return out
}

// postBatches posts batches in order from first and returns the index of
// the first batch not acknowledged (len(batches) when all were).
func postBatches(t *testing.T, s *server, batches [][]crashEvent, first int, stop <-chan struct{}, acked *atomic.Int64) int {
	for i := first; i < len(batches); i++ {
		select {
		case <-stop:
			return i
		default:
		}
		req, _ := http.NewRequest("POST", s.url+"/v1/events", jsonBody(t, batches[i]))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return i
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return i
		}
		if acked != nil {
			acked.Store(int64(i + 1))
		}
	}
	return len(batches)
}

// TestCrashOracle streams generated events while killing the server with
// SIGKILL at random moments, restarts it each time, sends again what was
// not acknowledged (and, as a client would, the last acknowledged batch
// too), and compares the final report of several periods with a brute
// force count. CRMPULSE_CRASH_EVENTS and CRMPULSE_CRASH_KILLS make it
// longer (make crash-long).
func TestCrashOracle(t *testing.T) {
	n := envInt(t, "CRMPULSE_CRASH_EVENTS", 50_000)
	kills := envInt(t, "CRMPULSE_CRASH_KILLS", 4)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d events, %d kills", seed, n, kills)
	rng := rand.New(rand.NewPCG(seed, 1))
	events := crashStream(rng, n)
	var batches [][]crashEvent
	for i := 0; i < n; i += 1000 {
		batches = append(batches, events[i:min(i+1000, n)])
	}

	// Kill moments: random numbers of acknowledged batches, spread over
	// the run, plus a random delay so that a kill lands mid-batch.
	targets := make([]int, kills)
	for i := range targets {
		targets[i] = (i*len(batches) + rng.IntN(len(batches))) / (kills + 1)
	}
	s := startServer(t, "")
	next := 0
	for k, target := range targets {
		stop := make(chan struct{})
		done := make(chan int, 1)
		var acked atomic.Int64
		first := max(next-1, 0) // the last acknowledged batch again: a duplicate
		acked.Store(int64(first))
		go func() { done <- postBatches(t, s, batches, first, stop, &acked) }()
		for acked.Load() < int64(target) && len(done) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		s.kill()
		close(stop)
		next = <-done
		t.Logf("kill %d: %d of %d batches acknowledged", k+1, next, len(batches))
		s.start()
	}
	if next = postBatches(t, s, batches, max(next-1, 0), nil, nil); next != len(batches) {
		t.Fatalf("batch %d was not acknowledged after the last restart:\n%s", next, s.logs)
	}
	s.waitReady()

	madrid := "Europe%2FMadrid"
	for _, p := range []struct{ query, from, to string }{
		{"period=custom&from=2024-01-01T00:00:00Z&to=2027-01-01T00:00:00Z&tz=UTC", "2024-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"period=custom&from=2025-03-24T00:00:00%2B01:00&to=2025-03-31T00:00:00%2B02:00&tz=" + madrid,
			"2025-03-24T00:00:00+01:00", "2025-03-31T00:00:00+02:00"},
		{"period=last_4_weeks&as_of=2025-10-29T10:15:07Z&tz=" + madrid, "2025-10-02T00:00:00+02:00", "2025-10-29T10:15:07Z"},
		{"period=year_to_date&as_of=2025-08-01T12:00:00Z&tz=Asia%2FKolkata", "2025-01-01T00:00:00+05:30", "2025-08-01T12:00:00Z"},
		{"period=custom&from=2025-06-01T10:20:30Z&to=2025-06-02T09:08:07Z", "2025-06-01T10:20:30Z", "2025-06-02T09:08:07Z"},
	} {
		from, _ := time.Parse(time.RFC3339, p.from)
		to, _ := time.Parse(time.RFC3339, p.to)
		want := crashOracle(events, from, to)
		got := s.report(p.query)
		rows := map[string]bool{}
		for _, u := range got.Users {
			rows[u.ID] = true
			for ent, w := range want[u.ID] {
				for _, k := range []string{"created", "updated", "deleted", "restored", "changes", "records"} {
					if g := u.Counts[ent][k]; g != w[k] {
						t.Errorf("%s: %s %s %s = %d, want %d", p.query, u.ID, ent, k, g, w[k])
					}
				}
			}
		}
		for id := range want {
			if !rows[id] {
				t.Errorf("%s: no row for %s", p.query, id)
			}
		}
		if len(got.Users) != len(want) {
			t.Errorf("%s: %d rows, want %d", p.query, len(got.Users), len(want))
		}
	}
}
