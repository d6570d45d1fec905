// Command cluster measures the many-process shape's workers: the rate at
// which one, two and three workers (a consumer group on Kafka) apply a
// stream of events, and the time a worker takes to restore a partition
// holding a million events by replaying it. Kafka is franz-go's kfake and
// NATS an embedded server, both in this process, so the figures are the
// workers' own cost plus an in-memory broker's, on this machine.
//
//	go run ./bench/cluster -events 300000 -restore 1000000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/aggregate"
	"github.com/crmpulse/crmpulse/cluster"
	"github.com/crmpulse/crmpulse/stream/kafka"
)

func main() {
	events := flag.Int("events", 300000, "events of the throughput runs")
	restore := flag.Int("restore", 1000000, "events of the partition to restore (0 skips)")
	maxWorkers := flag.Int("workers", 3, "throughput runs with 1..workers workers")
	flag.Parse()
	if err := run(*events, *restore, *maxWorkers); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(events, restore, maxWorkers int) error {
	ctx := context.Background()
	nc, stop, err := startNATS()
	if err != nil {
		return err
	}
	defer stop()
	for n := 1; n <= maxWorkers; n++ {
		d, err := throughput(ctx, nc, events, 12, n)
		if err != nil {
			return err
		}
		fmt.Printf("workers=%d events=%d partitions=12 time=%s rate=%.0f events/s\n",
			n, events, d.Round(time.Millisecond), float64(events)/d.Seconds())
	}
	if restore > 0 {
		d, err := throughput(ctx, nc, restore, 1, 1)
		if err != nil {
			return err
		}
		fmt.Printf("restore: partition of %d events replayed and serving in %s (%.0f events/s)\n",
			restore, d.Round(time.Millisecond), float64(restore)/d.Seconds())
	}
	return nil
}

// throughput fills a topic of the given partitions with events, then
// starts workers and returns the time until every partition is served
// with all its events applied.
func throughput(ctx context.Context, nc *nats.Conn, events int, partitions int32, workers int) (time.Duration, error) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, kafka.DefaultTopic))
	if err != nil {
		return 0, err
	}
	defer kc.Close()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := kafka.Config{Brokers: kc.ListenAddrs(), Partitions: partitions, Logger: logger,
		SessionTimeout: 6 * time.Second}
	producer, err := kafka.Open(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer producer.Close()
	if err := fill(ctx, producer, events); err != nil {
		return 0, err
	}
	end, err := producer.End(ctx)
	if err != nil {
		return 0, err
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		parts []*aggregate.Partitions
		ws    []*cluster.Worker
	)
	start := time.Now()
	for range workers {
		dir, err := os.MkdirTemp("", "crmpulse-bench-cluster-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(dir)
		l, err := kafka.Open(ctx, cfg)
		if err != nil {
			return 0, err
		}
		defer l.Close()
		ps, err := aggregate.OpenPartitions(dir, logger)
		if err != nil {
			return 0, err
		}
		w := cluster.NewWorker(cluster.WorkerConfig{Log: l, End: l.End, Partitions: ps, Conn: nc,
			Directory: noPeople{}, Logger: logger})
		parts, ws = append(parts, ps), append(ws, w)
		wg.Go(func() { w.Run(runCtx) })
	}
	for !done(ws, parts, end) {
		time.Sleep(20 * time.Millisecond)
	}
	d := time.Since(start)
	cancel()
	wg.Wait()
	return d, nil
}

// done reports whether every partition is served by a worker whose state
// holds the partition's last record.
func done(ws []*cluster.Worker, parts []*aggregate.Partitions, end map[int32]int64) bool {
	served := map[int32]bool{}
	for i, w := range ws {
		for _, p := range w.Serving() {
			if parts[i].Resume(p) > end[p] {
				served[p] = true
			}
		}
	}
	return len(served) == len(end)
}

// fill appends events in batches: 2,000 users over 3 tenants, 5 entities.
func fill(ctx context.Context, l *kafka.Log, n int) error {
	const batch = 5000
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	entities := []string{"lead", "opportunity", "account", "contact", "task"}
	for start := 0; start < n; start += batch {
		evs := make([]crmpulse.Event, 0, batch)
		for i := start; i < min(start+batch, n); i++ {
			action := crmpulse.Updated
			if i%5 == 0 {
				action = crmpulse.Created
			}
			e := crmpulse.Event{ID: fmt.Sprintf("e%d", i), Tenant: fmt.Sprintf("t%d", i%3), Source: "api",
				User: fmt.Sprintf("u%d", i%2000), Entity: entities[i%5], Record: fmt.Sprintf("r%d", i%50000),
				Action: action, At: base.Add(time.Duration(i) * time.Second)}
			e.Normalize()
			evs = append(evs, e)
		}
		if err := l.Append(ctx, evs); err != nil {
			return err
		}
	}
	return nil
}

func startNATS() (*nats.Conn, func(), error) {
	dir, err := os.MkdirTemp("", "crmpulse-bench-nats-")
	if err != nil {
		return nil, nil, err
	}
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		return nil, nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return nil, nil, fmt.Errorf("nats not ready")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return nil, nil, err
	}
	return nc, func() { nc.Close(); ns.Shutdown(); os.RemoveAll(dir) }, nil
}

// noPeople is an empty directory: every row is a source's user id.
type noPeople struct{}

func (noPeople) People() []crmpulse.Person             { return nil }
func (noPeople) Resolve(string, string) (string, bool) { return "", false }
