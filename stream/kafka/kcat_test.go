package kafka

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/stream"
)

// TestKcatProducer checks the topic format against another producer:
// kcat writes a record in CloudEvents binary content mode, partitioned as
// the Java client does, and Consume decodes it into the event it describes.
func TestKcatProducer(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		const msg = "kcat is not installed (apt-get install kcat)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cfg := Config{Brokers: startCluster(t)}
	log := openLog(t, cfg)

	// Tenant, source and id are left to the ce_ headers.
	want := crmpulse.Event{
		ID: "hs-9001", Tenant: "acme", Source: "hubspot", User: "2000001",
		Entity: "deal", Record: "D-42", RecordName: "Cancity renewal",
		Action: crmpulse.Updated, Fields: []string{"dealstage"},
		At: time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC),
	}
	value := `{"user":"2000001","entity":"deal","record":"D-42","record_name":"Cancity renewal",` +
		`"action":"updated","fields":["dealstage"],"at":"2025-03-01T10:30:00+01:00"}`
	key := stream.PartitionKey(&want)
	cmd := exec.CommandContext(t.Context(), kcat, "-P", "-b", cfg.Brokers[0], "-t", DefaultTopic,
		"-X", "partitioner=murmur2_random", "-K", "\t",
		"-H", "ce_specversion=1.0", "-H", "ce_id=hs-9001", "-H", "ce_source=/crmpulse/hubspot/acme",
		"-H", "ce_type=crmpulse.activity", "-H", "ce_time=2025-03-01T09:30:00Z",
		"-H", "content-type=application/json")
	cmd.Stdin = bytes.NewBufferString(key + "\t" + value + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var got []crmpulse.Record
	err = log.Consume(ctx, func(int32) int64 { return 0 }, func(_ context.Context, batch []crmpulse.Record) error {
		got = append(got, batch...)
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Consume = %v, want %v", err, context.Canceled)
	}
	if len(got) != 1 {
		t.Fatalf("got %d records, want 1", len(got))
	}
	if p, want := got[0].Partition, Partition(key, DefaultPartitions); p != want {
		t.Errorf("kcat put the record in partition %d, want %d as Append would", p, want)
	}
	if got, want := canonicalJSON(t, got[0].Event), canonicalJSON(t, want); got != want {
		t.Errorf("decoded event:\n got %s\nwant %s", got, want)
	}
}
