package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// LiveResult is figure 2 or 5: how long after the POST of a marked event
// the clients saw it.
type LiveResult struct {
	Clients  int
	Marks    int   // marked events posted (ticks less those skipped)
	Seen     int64 // marks seen, over all clients
	P50, P99 time.Duration
	Resyncs  int64
	Broken   int64
	Gaps     int64 // deltas whose seq did not follow the client's last one
	Skipped  int64 // ticks skipped because too many POSTs were in flight
	Errors   int64

	// Frames is the delta frames the clients read; ServerCPU and
	// ClientCPU are the CPU time the server and this process (the clients
	// and the posting) used while they were sent, and Wall how long that
	// took. CPU per frame is what other load on the machine moves least.
	// Bytes is the frames' payload: what the server had to write.
	Frames, Bytes        int64
	ServerCPU, ClientCPU time.Duration
	Wall                 time.Duration
}

// Delivered is the share of (mark, client) pairs that arrived.
func (r LiveResult) Delivered() float64 {
	if r.Marks == 0 || r.Clients == 0 {
		return 0
	}
	return float64(r.Seen) / float64(r.Marks*r.Clients)
}

// Note says how complete the delivery was.
func (r LiveResult) Note() string {
	note := fmt.Sprintf("%d clients; %.1f%% of %d marks × clients delivered; %d resyncs, %d broken, %d seq gaps, %d ticks skipped, %d POST errors",
		r.Clients, 100*r.Delivered(), r.Marks, r.Resyncs, r.Broken, r.Gaps, r.Skipped, r.Errors)
	if r.Frames > 0 && r.Wall > 0 {
		note += fmt.Sprintf("; server CPU %.2f µs/frame (%.0f%% of 2 cores), clients %.2f µs/frame (%.0f%%)",
			perFrame(r.ServerCPU, r.Frames), share(r.ServerCPU, r.Wall), perFrame(r.ClientCPU, r.Frames), share(r.ClientCPU, r.Wall))
		note += fmt.Sprintf("; frames of %s bytes on average, %s MB/s to all clients",
			thousands(r.Bytes/r.Frames), thousands(int64(float64(r.Bytes)/r.Wall.Seconds()/1e6)))
	}
	return note
}

func perFrame(cpu time.Duration, frames int64) float64 {
	return float64(cpu.Nanoseconds()) / 1000 / float64(frames)
}

// share is cpu as a percentage of two cores over wall.
func share(cpu, wall time.Duration) float64 { return 100 * cpu.Seconds() / (2 * wall.Seconds()) }

// selfCPU is the CPU time this process has used, user and system.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// RunLive connects clients, then posts batches of batchSize events to
// /v1/events, open-loop at perSecond batches a second for d, the first
// event of each batch marked. It is figure 2 (20,000 events/s in batches of
// 100, 1,000 clients) and figure 5 (20 single-event deltas/s, 10,000
// clients). connected is called once every client is subscribed.
func RunLive(ctx context.Context, s *Server, clients, perSecond, batchSize int, d time.Duration, connected func()) (LiveResult, error) {
	crowd, err := Connect(ctx, s, clients)
	if err != nil {
		return LiveResult{}, err
	}
	defer crowd.Close()
	connected()
	ticks := int(d.Seconds() * float64(perSecond))
	marks := NewMarks(ticks)
	serverBefore, _ := s.CPU()
	clientBefore, start := selfCPU(), time.Now()
	if err := crowd.Listen(marks); err != nil {
		return LiveResult{}, err
	}

	res := LiveResult{Clients: clients, Marks: ticks}
	var skipped, errs atomic.Int64
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	inFlight := make(chan struct{}, 64)
	interval := time.Second / time.Duration(perSecond)
	var wg sync.WaitGroup
	for i := range ticks {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		select {
		case inFlight <- struct{}{}:
		default:
			skipped.Add(1)
			continue
		}
		wg.Go(func() {
			defer func() { <-inFlight }()
			body := liveBatch(i, batchSize)
			marks.Posting(i)
			if err := expect(client.Post(s.URL+"/v1/events", "application/x-ndjson", bytes.NewReader(body))); err != nil {
				errs.Add(1)
			}
		})
	}
	wg.Wait()
	settle(&crowd.Seen, 15*time.Second)
	serverAfter, _ := s.CPU()
	res.ServerCPU, res.ClientCPU, res.Wall = serverAfter-serverBefore, selfCPU()-clientBefore, time.Since(start)
	res.Frames, res.Bytes, res.Gaps = crowd.Frames.Load(), crowd.Bytes.Load(), crowd.Gaps.Load()
	res.Seen, res.Resyncs, res.Broken = crowd.Seen.Load(), crowd.Resyncs.Load(), crowd.Broken.Load()
	res.Skipped, res.Errors = skipped.Load(), errs.Load()
	res.Marks -= int(res.Skipped)
	res.P50, res.P99 = crowd.Latency.Quantile(0.5), crowd.Latency.Quantile(0.99)
	return res, nil
}

// liveBatch is batch i of the live tenant, its first event marked.
func liveBatch(i, size int) []byte {
	now := time.Now().UTC()
	var b []byte
	for j := range size {
		record := fmt.Sprintf("rec-%d", j)
		if j == 0 {
			record = fmt.Sprintf("bm-%d", i)
		}
		b = fmt.Appendf(b, `{"id":"live-%d-%d","tenant":%q,"user":"%s","entity":"contact","record":%q,"action":"updated","fields":["phone"],"at":%q}`+"\n",
			i, j, liveTenant, personID((i+j)%50), record, now.Format(time.RFC3339Nano))
	}
	return b
}

// settle waits for the last frames: until seen has not moved for a second,
// or limit.
func settle(seen *atomic.Int64, limit time.Duration) {
	last := seen.Load()
	for start := time.Now(); time.Since(start) < limit; {
		time.Sleep(time.Second)
		now := seen.Load()
		if now == last {
			return
		}
		last = now
	}
}
