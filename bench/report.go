package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Periods are the report periods of figure 3.
var Periods = []string{"last_4_weeks", "year_to_date"}

// LoadResult is the bulk load that precedes figure 3.
type LoadResult struct {
	Events  int    // acknowledged
	Stopped string // why the load ended before the last event, if it did
	Sending time.Duration
	CatchUp time.Duration
}

// Rate is events/s until the last event was applied.
func (r LoadResult) Rate() float64 {
	return float64(r.Events) / (r.Sending + r.CatchUp).Seconds()
}

// Loaders and batches of the bulk load: 3 × 2,500 events stay under the
// 8,192 asynchronous publishes the JetStream log lets be outstanding; 4 ×
// 5,000 made Append stall and answer 503 (see docs/benchmarks.md).
const (
	loaders   = 3
	loadBatch = 2500
)

// LoadHistory puts the directory's people and then the history's first n
// events into s through PUT /v1/users and POST /v1/events (NDJSON batches
// from a few loaders), and waits until they are applied. Loading stops
// early at limit, or at a request that still fails after retries, so that
// a slow or failing server still gives a bounded run; Events then says how
// many were acknowledged and Stopped why.
func LoadHistory(ctx context.Context, s *Server, h History, n int, limit time.Duration) (LoadResult, error) {
	client := &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	if err := putPeople(ctx, client, s, h.People); err != nil {
		return LoadResult{}, err
	}
	var next, acked atomic.Int64
	var failed atomic.Pointer[error]
	start := time.Now()
	deadline := start.Add(limit)
	var wg sync.WaitGroup
	for range loaders {
		wg.Go(func() {
			var body []byte
			for ctx.Err() == nil && time.Now().Before(deadline) && failed.Load() == nil {
				from := int(next.Add(loadBatch) - loadBatch)
				if from >= n {
					return
				}
				body = body[:0]
				to := min(from+loadBatch, n)
				for i := from; i < to; i++ {
					e := h.Event(i)
					body = e.appendJSON(body)
				}
				if err := postRetrying(ctx, client, s.URL+"/v1/events", body); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				acked.Add(int64(to - from))
			}
		})
	}
	wg.Wait()
	res := LoadResult{Events: int(acked.Load()), Sending: time.Since(start)}
	if err := failed.Load(); err != nil {
		res.Stopped = "a request failed after retries: " + (*err).Error()
	} else if res.Events < n {
		res.Stopped = "BENCH_LOAD_LIMIT"
	}
	var err error
	res.CatchUp, err = s.WaitReady(ctx, 30*time.Minute)
	return res, err
}

// postRetrying posts NDJSON, retrying with backoff on errors the import
// command would retry too.
func postRetrying(ctx context.Context, client *http.Client, url string, body []byte) error {
	var err error
	wait := 250 * time.Millisecond
	for attempt := range 8 {
		if attempt > 0 {
			time.Sleep(wait)
			wait = min(2*wait, 10*time.Second)
		}
		req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-ndjson")
		if err = expect(client.Do(req)); err == nil {
			return nil
		}
	}
	return err
}

func putPeople(ctx context.Context, client *http.Client, s *Server, people int) error {
	teams := []string{"North", "South", "East", "West", "Central"}
	for p := range people {
		id := personID(p)
		body := fmt.Appendf(nil, `{"id":%q,"name":"Person %d","team":%q,"office":%q,"status":"active"}`,
			id, p, teams[p%len(teams)], teams[p%len(teams)])
		req, _ := http.NewRequestWithContext(ctx, "PUT", s.URL+"/v1/users/"+id, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if err := expect(client.Do(req)); err != nil {
			return fmt.Errorf("put person %s: %w", id, err)
		}
	}
	return nil
}

// QueryResult is figure 3 for one system: latencies by period.
type QueryResult struct {
	Latency map[string]*Histogram
	Sent    int
	Skipped int64 // queries not started because too many were in flight
	Errors  int64
}

// Note says how many queries did not count.
func (r QueryResult) Note() string {
	return fmt.Sprintf("%d queries, %d not sent (64 in flight), %d errors", r.Sent, r.Skipped, r.Errors)
}

// OpenLoop asks query at rate per second for d, alternating the periods,
// each on its schedule whether or not earlier ones have answered; latency
// runs from the scheduled time, so a stall shows in full. At most 64
// queries are in flight; a tick past that is counted as skipped.
func OpenLoop(ctx context.Context, rate int, d time.Duration, query func(ctx context.Context, period string) error) QueryResult {
	res := QueryResult{Latency: map[string]*Histogram{}}
	for _, p := range Periods {
		res.Latency[p] = &Histogram{}
	}
	var skipped, errs atomic.Int64
	inFlight := make(chan struct{}, 64)
	interval := time.Second / time.Duration(rate)
	ticks := int(d / interval)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range ticks {
		at := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		select {
		case inFlight <- struct{}{}:
		default:
			skipped.Add(1)
			continue
		}
		period := Periods[i%len(Periods)]
		wg.Go(func() {
			defer func() { <-inFlight }()
			if err := query(ctx, period); err != nil {
				errs.Add(1)
				return
			}
			res.Latency[period].Record(time.Since(at))
		})
	}
	wg.Wait()
	res.Sent, res.Skipped, res.Errors = ticks, skipped.Load(), errs.Load()
	return res
}

// ReportQuery asks crmpulse's /v1/report for a period, reading the whole
// answer.
func ReportQuery(s *Server) func(ctx context.Context, period string) error {
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	return func(ctx context.Context, period string) error {
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/v1/report?tz=UTC&period="+period, nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("report: %s", resp.Status)
		}
		return nil
	}
}
