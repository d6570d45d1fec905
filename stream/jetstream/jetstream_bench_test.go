package jetstream

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
)

// BenchmarkAppend measures what each durability setting costs: batches of
// 100 events (a HubSpot delivery) appended and acknowledged.
func BenchmarkAppend(b *testing.B) {
	for _, sync := range []bool{false, true} {
		name := "durability=process"
		if sync {
			name = "durability=machine"
		}
		b.Run(name, func(b *testing.B) {
			ns, nc, err := StartServer(ServerConfig{Dir: b.TempDir(), SyncAlways: sync})
			if err != nil {
				b.Fatal(err)
			}
			defer ns.Shutdown()
			defer nc.Close()
			log, err := Open(context.Background(), nc, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			batch := make([]crmpulse.Event, 100)
			at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for i := range batch {
				batch[i] = crmpulse.Event{Tenant: "t", Source: "hubspot", User: fmt.Sprint(i % 7), Entity: "contact",
					Record: fmt.Sprint(i), Action: crmpulse.Updated, At: at, Fields: []string{"phone"}}
			}
			b.ResetTimer()
			for b.Loop() {
				if err := log.Append(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
		})
	}
}
