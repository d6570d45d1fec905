package kafka

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/stream/streamtest"
)

func TestConformance(t *testing.T) {
	streamtest.Run(t, func(t *testing.T) streamtest.Backend {
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
