// Package kafka is the event log on Apache Kafka, through franz-go: the log
// of the many-process shape. Events are records keyed by tenant, source and
// user, in CloudEvents binary content mode (ce_ headers, the canonical event
// as JSON in the value), so other producers can write to the topic and other
// consumers can read it. Records that cannot be decoded go to a dead-letter
// topic with the reason in a header.
package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/stream"
)

// Defaults for the fields of Config left empty.
const (
	DefaultTopic           = "crmpulse-events"
	DefaultDeadLetterTopic = "crmpulse-deadletter"
	DefaultPartitions      = 12
	DefaultGroup           = "crmpulse-workers"
)

// SASL mechanisms Config.SASL accepts.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// linger is how long a partition's records wait for more before a produce
// request is sent. Append returns only when the broker has acknowledged, so
// linger is added to the latency of every webhook answer when the log is
// idle; under load, records gather while earlier requests are in flight
// anyway. Five milliseconds lets the events of concurrent deliveries share
// a request (fewer, larger requests, which matters with acks=all) at a cost
// that is small beside a webhook round trip and far inside the one second
// the report has to show a change.
const linger = 5 * time.Millisecond

// Config says how to reach Kafka and which topics to use.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// Topic holds the events; DeadLetterTopic the records that could not
	// be decoded. Empty means DefaultTopic and DefaultDeadLetterTopic.
	Topic           string
	DeadLetterTopic string
	// Partitions and ReplicationFactor are used to create a topic that
	// does not exist yet; an existing topic is left as it is. Zero means
	// DefaultPartitions and the broker's default replication factor.
	Partitions        int32
	ReplicationFactor int16
	// Group is the consumer group of ConsumeGroup; empty means DefaultGroup.
	Group string
	// SessionTimeout is how long the group waits for a silent member
	// before it hands the member's partitions to the others (the time a
	// killed worker's partitions stay without an owner); zero means the
	// client's default, 45 s. The broker bounds it (6 s at least, by
	// default).
	SessionTimeout time.Duration
	// SASL authenticates to the brokers when its Mechanism is set.
	SASL SASL
	// TLS, when not nil, makes every connection use TLS with this
	// configuration (for instance with RootCAs for a private CA, or
	// Certificates for mutual TLS).
	TLS *tls.Config
	// Logger receives lifecycle and dead-letter messages; nil discards them.
	Logger *slog.Logger
}

// SASL holds the credentials for SASL authentication.
type SASL struct {
	// Mechanism is Plain, ScramSHA256 or ScramSHA512; empty disables SASL.
	Mechanism string
	User      string
	Password  string
}

// Log is a crmpulse.Log and a stream.GroupLog on one Kafka topic. The
// partition and offset of a Record are Kafka's own.
type Log struct {
	cfg    Config
	opts   []kgo.Opt // connection options shared by every client
	client *kgo.Client
	logger *slog.Logger
	closed atomic.Bool
	ids    *stream.BatchIDs
	// parts is the event topic's partition count when the log opened.
	//
	// TODO(kafka): partitions added to the topic later are not used by
	// Append until the log is opened again; Kafka moves keys between
	// partitions then anyway.
	parts int32
}

var _ stream.GroupLog = (*Log)(nil)

// Open connects to Kafka, creates the topics when they are missing, and
// returns the log. The caller closes it.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	cfg = withDefaults(cfg)
	opts, err := connOpts(cfg)
	if err != nil {
		return nil, err
	}
	client, err := kgo.NewClient(append(opts,
		kgo.DefaultProduceTopic(cfg.Topic),
		// Acks from every in-sync replica, and idempotence so that the
		// client's retries never write a record twice nor reorder a key.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(linger),
		// The Java client's partitioner before 3.3 and the one Kafka
		// Connect, Debezium and librdkafka's murmur2_random use: a key
		// lands in the same partition whichever of them produced it.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	)...)
	if err != nil {
		return nil, fmt.Errorf("open kafka client: %w", err)
	}
	l := &Log{cfg: cfg, opts: opts, client: client, logger: cfg.Logger.With("component", "kafka"),
		ids: stream.NewBatchIDs()}
	if err := l.createTopics(ctx); err != nil {
		client.Close()
		return nil, err
	}
	if l.parts, err = l.partitions(ctx); err != nil {
		client.Close()
		return nil, err
	}
	return l, nil
}

func withDefaults(cfg Config) Config {
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if cfg.DeadLetterTopic == "" {
		cfg.DeadLetterTopic = DefaultDeadLetterTopic
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = DefaultPartitions
	}
	if cfg.ReplicationFactor == 0 {
		cfg.ReplicationFactor = -1
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// connOpts returns the options every client of the log shares: the
// brokers, TLS and SASL.
func connOpts(cfg Config) ([]kgo.Opt, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers configured")
	}
	opts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}
	if cfg.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(cfg.TLS.Clone()))
	}
	if cfg.SASL.Mechanism != "" {
		m, err := mechanism(cfg.SASL)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func mechanism(s SASL) (sasl.Mechanism, error) {
	switch strings.ToUpper(s.Mechanism) {
	case Plain:
		return plain.Auth{User: s.User, Pass: s.Password}.AsMechanism(), nil
	case ScramSHA256:
		return scram.Auth{User: s.User, Pass: s.Password}.AsSha256Mechanism(), nil
	case ScramSHA512:
		return scram.Auth{User: s.User, Pass: s.Password}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("kafka: unknown sasl mechanism %q, want %s, %s or %s",
		s.Mechanism, Plain, ScramSHA256, ScramSHA512)
}

// createTopics creates the event and dead-letter topics that do not exist.
func (l *Log) createTopics(ctx context.Context) error {
	adm := kadm.NewClient(l.client)
	for _, topic := range []string{l.cfg.Topic, l.cfg.DeadLetterTopic} {
		resp, err := adm.CreateTopic(ctx, l.cfg.Partitions, l.cfg.ReplicationFactor, nil, topic)
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists) || errors.Is(resp.Err, kerr.TopicAlreadyExists):
			continue
		case err != nil:
			return fmt.Errorf("create topic %s: %w", topic, err)
		case resp.Err != nil:
			return fmt.Errorf("create topic %s: %w", topic, resp.Err)
		}
		l.logger.Info("topic created", "topic", topic, "partitions", l.cfg.Partitions)
	}
	return nil
}

// Append produces the events and returns once every in-sync replica has
// acknowledged each of them. The events of one partition go in batch
// records (stream.BatchType) keyed by the first event's key, so that each
// lands where its events would have landed one by one. On an error some
// events may have been stored; the caller may retry the whole batch.
func (l *Log) Append(ctx context.Context, events []crmpulse.Event) error {
	var records []*kgo.Record
	for _, group := range l.byPartition(events) {
		for _, run := range stream.Split(group) {
			records = append(records, l.encode(run))
		}
	}
	if err := l.client.ProduceSync(ctx, records...).FirstErr(); err != nil {
		if errors.Is(err, kgo.ErrClientClosed) {
			return crmpulse.ErrClosed
		}
		return fmt.Errorf("produce to %s: %w", l.cfg.Topic, err)
	}
	return nil
}

// byPartition groups events by the partition of their key, keeping their
// order within each group.
func (l *Log) byPartition(events []crmpulse.Event) [][]crmpulse.Event {
	if l.parts <= 1 {
		return [][]crmpulse.Event{events}
	}
	groups := map[int32][]crmpulse.Event{}
	var order []int32
	for i := range events {
		p := Partition(stream.PartitionKey(&events[i]), l.parts)
		if _, ok := groups[p]; !ok {
			order = append(order, p)
		}
		groups[p] = append(groups[p], events[i])
	}
	out := make([][]crmpulse.Event, 0, len(order))
	for _, p := range order {
		out = append(out, groups[p])
	}
	return out
}

// encode puts events of one partition in a record: a CloudEvents batch in
// binary content mode.
func (l *Log) encode(events []crmpulse.Event) *kgo.Record {
	r := &kgo.Record{Key: []byte(stream.PartitionKey(&events[0])), Value: stream.AppendBatch(nil, events)}
	attrs := stream.BatchEnvelope(l.ids.Next(), time.Now())
	r.Headers = make([]kgo.RecordHeader, 0, len(attrs)+1)
	for _, name := range attrOrder {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: headerPrefix + name, Value: []byte(attrs[name])})
	}
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderContentType, Value: []byte(stream.ContentType)})
	return r
}

// attrOrder fixes the order of the ce_ headers, so records read the same
// in every tool.
var attrOrder = []string{
	stream.AttrSpecVersion, stream.AttrID, stream.AttrSource, stream.AttrType, stream.AttrTime,
}

// Header names on the event and dead-letter topics.
const (
	// headerPrefix is the CloudEvents Kafka binding's attribute prefix.
	headerPrefix = "ce_"
	// HeaderContentType is the binding's header for the data's media type.
	HeaderContentType = "content-type"
	// HeaderReason says why a record went to the dead letters.
	HeaderReason = "crmpulse_reason"
	// HeaderOrigin says where a dead letter was read: topic/partition@offset.
	HeaderOrigin = "crmpulse_origin"
)

// Partition returns the partition of a topic with n partitions that Append
// puts a record with this key in (see stream.PartitionKey). It is Kafka's
// default: murmur2 of the key, sign bit cleared, modulo n.
func Partition(key string, n int32) int32 {
	p := kgo.StickyKeyPartitioner(nil).ForTopic("")
	return int32(p.Partition(&kgo.Record{Key: []byte(key)}, int(n)))
}

// Close closes the producer; Append calls still waiting for their
// acknowledgements fail with crmpulse.ErrClosed, and so do later calls of
// every method. Consumers already started stop with their contexts.
func (l *Log) Close() error {
	l.closed.Store(true)
	l.client.Close()
	return nil
}
