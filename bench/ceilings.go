package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/stream/jetstream"
)

// Ceilings are the parts alone, in this process: how fast the embedded
// JetStream log takes and gives back events, and how fast Badger takes
// batched writes. No pipeline through them can beat these.
type Ceilings struct {
	Publish, Consume, Badger float64 // events/s
}

// RunCeilings measures each part for about d.
func RunCeilings(ctx context.Context, work string, senders int, d time.Duration) (Ceilings, error) {
	var c Ceilings
	var err error
	if c.Publish, c.Consume, err = jetstreamCeiling(ctx, filepath.Join(work, "ceiling-js"), senders, d); err != nil {
		return c, err
	}
	c.Badger, err = badgerCeiling(filepath.Join(work, "ceiling-badger"), d)
	return c, err
}

// jetstreamCeiling appends batches of 100 events through crmpulse's own
// JetStream log (the same encoding and acknowledgement the server waits
// for) from senders at once, then consumes them all with a handler that
// does nothing.
func jetstreamCeiling(ctx context.Context, dir string, senders int, d time.Duration) (float64, float64, error) {
	ns, nc, err := jetstream.StartServer(jetstream.ServerConfig{Dir: dir})
	if err != nil {
		return 0, 0, err
	}
	defer ns.Shutdown()
	defer nc.Close()
	log, err := jetstream.Open(ctx, nc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return 0, 0, err
	}
	defer log.Close()

	h := History{People: 300, Now: time.Now()}
	var appended atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for w := range senders {
		wg.Go(func() {
			batch := make([]crmpulse.Event, 100)
			for b := 0; time.Since(start) < d; b++ {
				for i := range batch {
					e := h.Event((b*senders+w)*100 + i)
					batch[i] = crmpulse.Event{ID: e.ID, Tenant: "t", Source: "hubspot", User: e.User,
						Entity: e.Entity, Record: e.Record, Action: crmpulse.Action(e.Action), At: e.At}
				}
				if err := log.Append(ctx, batch); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				appended.Add(100)
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		return 0, 0, fmt.Errorf("jetstream append: %w", *err)
	}
	total := appended.Load()
	publish := float64(total) / time.Since(start).Seconds()

	cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var consumed atomic.Int64
	start = time.Now()
	err = log.Consume(cctx, func(int32) int64 { return 0 }, func(_ context.Context, batch []crmpulse.Record) error {
		if consumed.Add(int64(len(batch))) >= total {
			cancel()
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return 0, 0, fmt.Errorf("jetstream consume: %w", err)
	}
	return publish, float64(consumed.Load()) / time.Since(start).Seconds(), nil
}

// badgerCeiling writes, per event, what applying it needs at the least:
// its identity, a counter and a distinct-record key, in WriteBatches of
// 10,000 events, for d.
func badgerCeiling(dir string, d time.Duration) (float64, error) {
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	h := History{People: 300, Now: time.Now()}
	var value [8]byte
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		wb := db.NewWriteBatch()
		for range 10_000 {
			e := h.Event(n)
			n++
			binary.BigEndian.PutUint64(value[:], uint64(n))
			wb.Set([]byte("id/"+e.ID), nil)
			wb.Set([]byte("count/"+e.User+"/"+e.Entity+"/"+e.Action+"/"+e.At.Format("2006-01-02")), value[:])
			if err := wb.Set([]byte("rec/"+e.User+"/"+e.Entity+"/"+e.Record), nil); err != nil {
				wb.Cancel()
				return 0, err
			}
		}
		if err := wb.Flush(); err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
