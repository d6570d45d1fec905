package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/stream/streamtest"
)

func TestConformance(t *testing.T) {
	streamtest.Run(t, streamtest.Options{Groups: true}, func(t *testing.T) streamtest.Backend {
		cfg := Config{Brokers: startCluster(t), Group: "conformance"}
		return streamtest.Backend{
			Open:     func(t *testing.T) crmpulse.Log { return openLog(t, cfg) },
			WriteRaw: func(t *testing.T, key string, value []byte) { produceRaw(t, cfg, key, value, nil) },
			DeadLetters: func(ctx context.Context, t *testing.T, n int) []streamtest.DeadLetter {
				var dead []streamtest.DeadLetter
				for _, r := range readTopic(ctx, t, cfg, DefaultDeadLetterTopic, n) {
					dead = append(dead, streamtest.DeadLetter{Reason: header(r, HeaderReason), Value: r.Value})
				}
				return dead
			},
		}
	})
}

// startCluster starts an in-process Kafka on 127.0.0.1 with no topics, so
// that Open creates them, and returns its address.
func startCluster(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func openLog(t *testing.T, cfg Config) *Log {
	t.Helper()
	l, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// produceRaw writes a record to the event topic as a foreign producer.
func produceRaw(t *testing.T, cfg Config, key string, value []byte, headers []kgo.RecordHeader) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic(DefaultTopic))
	if err != nil {
		t.Fatalf("raw producer: %v", err)
	}
	defer cl.Close()
	r := &kgo.Record{Key: []byte(key), Value: value, Headers: headers}
	if err := cl.ProduceSync(t.Context(), r).FirstErr(); err != nil {
		t.Fatalf("produce raw record: %v", err)
	}
}

// readTopic returns the first n records of topic, in order when the topic
// has one partition or they share a key, waiting for them until ctx is done.
func readTopic(ctx context.Context, t *testing.T, cfg Config, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatalf("reader: %v", err)
	}
	defer cl.Close()
	var records []*kgo.Record
	for len(records) < n {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: got %d records, want %d: %v", topic, len(records), n, ctx.Err())
		}
		records = append(records, fetches.Records()...)
	}
	return records
}

// TestRecordFormat checks what Append writes, as the README documents it
// for other consumers: one batch record per partition of the delivery,
// keyed by its first event's key and in that key's partition, holding the
// partition's events in order.
func TestRecordFormat(t *testing.T) {
	cfg := Config{Brokers: startCluster(t)}
	at := time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC)
	event := func(id, user string) crmpulse.Event {
		return crmpulse.Event{ID: id, Tenant: "acme", Source: "api", User: user, Entity: "lead",
			Record: "L-1", Action: crmpulse.Created, At: at}
	}
	// u-17 and u-3 hash to different partitions of twelve.
	events := []crmpulse.Event{event("evt-1", "u-17"), event("evt-2", "u-3"), event("evt-3", "u-17")}
	if Partition("acme\x00api\x00u-17", DefaultPartitions) == Partition("acme\x00api\x00u-3", DefaultPartitions) {
		t.Fatal("the test's users share a partition; pick others")
	}
	if err := openLog(t, cfg).Append(t.Context(), events); err != nil {
		t.Fatalf("Append: %v", err)
	}
	records := readTopic(t.Context(), t, cfg, DefaultTopic, 2)

	wantValues := map[string]string{
		"acme\x00api\x00u-17": "[" + canonicalJSON(t, events[0]) + "," + canonicalJSON(t, events[2]) + "]",
		"acme\x00api\x00u-3":  "[" + canonicalJSON(t, events[1]) + "]",
	}
	ids := map[string]bool{}
	for _, r := range records {
		want, ok := wantValues[string(r.Key)]
		if !ok {
			t.Errorf("record with key %q, want one of the events' keys", r.Key)
			continue
		}
		if got, want := r.Partition, Partition(string(r.Key), DefaultPartitions); got != want {
			t.Errorf("key %q: partition = %d, want %d", r.Key, got, want)
		}
		if got := string(r.Value); got != want {
			t.Errorf("key %q: value = %s, want %s", r.Key, got, want)
		}
		headers := map[string]string{}
		for _, h := range r.Headers {
			headers[h.Key] = string(h.Value)
		}
		ids[headers["ce_id"]] = true
		if _, err := time.Parse(time.RFC3339Nano, headers["ce_time"]); err != nil {
			t.Errorf("ce_time: %v", err)
		}
		delete(headers, "ce_id")
		delete(headers, "ce_time")
		want = fmt.Sprint(map[string]string{
			"ce_specversion": "1.0", "ce_source": "/crmpulse", "ce_type": "crmpulse.activity.batch",
			"content-type": "application/json",
		})
		if got := fmt.Sprint(headers); got != want {
			t.Errorf("headers but ce_id and ce_time = %s, want %s", got, want)
		}
	}
	if len(ids) != 2 || ids[""] {
		t.Errorf("ce_id values %v, want two different ones", ids)
	}
}

// TestSASL checks each SASL mechanism against a broker that requires it.
// A wrong password is not tried: kfake drops the connection instead of
// answering SaslAuthenticationFailed as a broker does, so the client retries
// it as a network error until its retries run out.
func TestSASL(t *testing.T) {
	for _, mech := range []string{Plain, ScramSHA256, ScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
				kfake.Superuser(mech, "crm", "s3cret"))
			if err != nil {
				t.Fatalf("start kfake: %v", err)
			}
			t.Cleanup(c.Close)
			cfg := Config{Brokers: c.ListenAddrs(), SASL: SASL{Mechanism: mech, User: "crm", Password: "s3cret"}}
			roundTrip(t, openLog(t, cfg))
		})
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no brokers":   {},
		"unknown sasl": {Brokers: []string{"127.0.0.1:1"}, SASL: SASL{Mechanism: "GSSAPI"}},
	} {
		t.Run(name, func(t *testing.T) {
			if l, err := Open(t.Context(), cfg); err == nil {
				l.Close()
				t.Errorf("Open succeeded, want an error")
			}
		})
	}
}

// roundTrip appends one event and consumes it back.
func roundTrip(t *testing.T, l *Log) {
	t.Helper()
	e := crmpulse.Event{
		ID: "evt-1", Tenant: "acme", Source: "api", User: "u-1", Entity: "lead",
		Record: "L-1", Action: crmpulse.Created, At: time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC),
	}
	if err := l.Append(t.Context(), []crmpulse.Event{e}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var got []crmpulse.Record
	err := l.Consume(ctx, func(int32) int64 { return 0 }, func(_ context.Context, batch []crmpulse.Record) error {
		got = append(got, batch...)
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || len(got) != 1 {
		t.Fatalf("Consume = %v with %d records, want context.Canceled with 1", err, len(got))
	}
	if got, want := canonicalJSON(t, got[0].Event), canonicalJSON(t, e); got != want {
		t.Errorf("event:\n got %s\nwant %s", got, want)
	}
}

// canonicalJSON renders e normalized, for comparison.
func canonicalJSON(t *testing.T, e crmpulse.Event) string {
	t.Helper()
	e.Normalize()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
