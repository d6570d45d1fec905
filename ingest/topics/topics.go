// Package topics reads change feeds that other systems write to Kafka
// (Debezium's table topics, a Salesforce source connector's Change Data
// Capture topic) and appends the decoded events to crmpulse's log.
//
// Delivery is at least once. A Reader commits a batch's Kafka offsets in its
// consumer group only after the log has stored every event of the batch and
// the dead-letter store every record that could not be decoded, so a crash
// or a rebalance before the commit makes the batch be read again. A
// redelivered record decodes to the same events with the same identity, and
// the state applies each identity once, so it counts once.
//
// Identity: the decoders set no event id, so the identity is the one API.md
// derives from tenant, source, entity, record, action and the instant
// (SOURCES-EXPECTED §1.2). For Debezium that instant is the row's mapped
// time column (µs for MicroTimestamp), or the database's source.ts_us for a
// delete. This identity is stable both when Kafka redelivers a record and
// when the Debezium connector, after an unclean stop, produces the same
// change again at a new offset; Kafka's topic, partition and offset would
// count that second copy twice. The source position (PostgreSQL lsn, MySQL
// binlog file and position) would also survive it, but it is named
// differently by every connector and is absent from the expected readings.
//
// TODO(debezium): two changes of one row with the same action and the same
// instant (an updated_at column the application does not maintain, mapped
// anyway) have one identity and count once; map no time column for such a
// table, so that the database's commit time is used instead.
package topics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest"
)

// Decoder turns one Kafka record into a delivery: events, types that are
// not counted, gaps. An error means the record cannot be decoded; it goes to
// the dead letters and the partition moves on. A Decoder is called from one
// goroutine at a time.
type Decoder func(r *kgo.Record, now time.Time) (*ingest.Delivery, error)

// Config says where a Reader reads and how it decodes.
type Config struct {
	// Name names the reader in logs, metrics (label "reader") and dead
	// letters: "debezium", "salesforce".
	Name    string
	Brokers []string
	// Group is the consumer group that holds the committed offsets.
	Group  string
	Topics []string
	Decode Decoder
	// Opts are added to the Kafka client's options: TLS, SASL, timings.
	Opts []kgo.Opt
	// Attribute, when set, is applied to every batch's events before they
	// are appended, to find the acting user of unattributed events.
	Attribute func(ctx context.Context, source string, events []crmpulse.Event)
}

// maxPoll bounds the records of one batch: one append, one commit.
const maxPoll = 1000

// retryLogEvery is how often a failure that keeps being retried is logged.
const retryLogEvery = 30 * time.Second

// Reader appends what configured topics hold to the log, in a consumer
// group. Run it once; it owns its Kafka client.
type Reader struct {
	cfg    Config
	log    crmpulse.Log
	logger *slog.Logger
	now    func() time.Time

	records *prometheus.CounterVec
	events  *prometheus.CounterVec
	gaps    *prometheus.CounterVec
}

// New returns a reader of cfg's topics into log, its metrics registered with
// reg under the label reader=cfg.Name.
func New(cfg Config, log crmpulse.Log, logger *slog.Logger, reg prometheus.Registerer) (*Reader, error) {
	switch {
	case len(cfg.Brokers) == 0:
		return nil, fmt.Errorf("topics %s: no brokers configured", cfg.Name)
	case len(cfg.Topics) == 0:
		return nil, fmt.Errorf("topics %s: no topics configured", cfg.Name)
	case cfg.Group == "" || cfg.Decode == nil:
		return nil, fmt.Errorf("topics %s: a group and a decoder are required", cfg.Name)
	}
	rd := &Reader{
		cfg: cfg, log: log, now: time.Now,
		logger: logger.With("component", "topics", "source", cfg.Name),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmpulse_topic_records_total",
			Help: "Kafka records read from CRM change topics, by topic and outcome (appended, skipped, dead_letter).",
		}, []string{"topic", "outcome"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmpulse_topic_events_appended_total", Help: "Events from CRM change topics stored on the log.",
		}, []string{"topic"}),
		gaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmpulse_topic_gaps_total", Help: "Changes a topic's source reported lost without naming records.",
		}, []string{"topic", "type"}),
	}
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"reader": cfg.Name}, reg)
	for _, c := range []prometheus.Collector{rd.records, rd.events, rd.gaps} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("topics %s: register metrics: %w", cfg.Name, err)
		}
	}
	return rd, nil
}

// Run reads until ctx is done, then leaves the group and returns nil. It
// returns an error only when the client cannot be made or the log is
// closed. A batch whose events the log does not take is retried, holding the
// partitions, until the log takes it or ctx ends; it is then read again by
// whoever owns the partitions next.
func (rd *Reader) Run(ctx context.Context) error {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(rd.cfg.Brokers...),
		kgo.ConsumerGroup(rd.cfg.Group),
		kgo.ConsumeTopics(rd.cfg.Topics...),
		kgo.DisableAutoCommit(),
		// Revocation waits for the batch in hand to be appended and
		// committed, so a partition is never read by two members at once.
		kgo.BlockRebalanceOnPoll(),
		// A new group starts at the beginning: the history is counted, and
		// Debezium's snapshot reads (op r) are skipped.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			rd.logger.Info("partitions assigned", "partitions", m)
		}),
	}, rd.cfg.Opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("topics %s: kafka client: %w", rd.cfg.Name, err)
	}
	defer cl.Close()
	rd.logger.Info("started", "topics", rd.cfg.Topics, "group", rd.cfg.Group)
	defer rd.logger.Info("stopped")

	var lastFetchLog time.Time
	for {
		fetches := cl.PollRecords(ctx, maxPoll)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			cl.AllowRebalance() // else leaving the group in Close waits forever
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if time.Since(lastFetchLog) > retryLogEvery {
				lastFetchLog = time.Now()
				rd.logger.Warn("fetch failed", "topic", topic, "partition", partition, "err", err)
			}
		})
		records := fetches.Records()
		if err := rd.handle(ctx, records); err != nil {
			cl.AllowRebalance()
			if errors.Is(err, crmpulse.ErrClosed) {
				return fmt.Errorf("topics %s: %w", rd.cfg.Name, err)
			}
			return nil // ctx ended before the batch was stored: it will be read again
		}
		rd.commit(ctx, cl, records)
		cl.AllowRebalance()
	}
}

// commit commits the batch's offsets even when ctx has just ended, since the
// batch is stored; a failed commit only means the batch is read again.
func (rd *Reader) commit(ctx context.Context, cl *kgo.Client, records []*kgo.Record) {
	if len(records) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := cl.CommitRecords(ctx, records...); err != nil {
		rd.logger.Warn("commit failed; the batch will be read again", "records", len(records), "err", err)
	}
}

// handle decodes a batch and stores its events and dead letters, retrying
// until they are stored or ctx ends.
func (rd *Reader) handle(ctx context.Context, records []*kgo.Record) error {
	now := rd.now()
	var events []crmpulse.Event
	var dead []ingest.DeadLetter
	for _, r := range records {
		d, err := rd.cfg.Decode(r, now)
		if err != nil {
			rd.records.WithLabelValues(r.Topic, "dead_letter").Inc()
			reason := fmt.Sprintf("%s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			dead = append(dead, ingest.DeadLetter{Reason: reason, Data: r.Value})
			rd.logger.Debug("record not decoded", "topic", r.Topic, "partition", r.Partition,
				"offset", r.Offset, "err", err)
			continue
		}
		rd.count(r, d)
		for _, e := range d.Events {
			e.Normalize()
			e.Received = now.UTC()
			events = append(events, e)
		}
	}
	if len(dead) > 0 {
		rd.logger.Warn("records sent to dead letters", "records", len(dead), "first_reason", dead[0].Reason)
	}
	if rd.cfg.Attribute != nil && len(events) > 0 {
		rd.cfg.Attribute(ctx, rd.cfg.Name, events)
	}

	if len(events) > 0 {
		if err := rd.retry(ctx, "append", func(ctx context.Context) error { return rd.log.Append(ctx, events) }); err != nil {
			return err
		}
	}
	for _, dl := range dead {
		if err := rd.retry(ctx, "dead letter", func(ctx context.Context) error { return rd.deadLetter(ctx, dl) }); err != nil {
			return err
		}
	}
	return nil
}

// count records a decoded record's outcome in the metrics.
func (rd *Reader) count(r *kgo.Record, d *ingest.Delivery) {
	outcome := "skipped"
	if len(d.Events) > 0 {
		outcome = "appended"
		rd.events.WithLabelValues(r.Topic).Add(float64(len(d.Events)))
	}
	rd.records.WithLabelValues(r.Topic, outcome).Inc()
	for typ, n := range d.Gaps {
		rd.gaps.WithLabelValues(r.Topic, typ).Add(float64(n))
		rd.logger.Warn("source reported lost changes", "topic", r.Topic, "partition", r.Partition,
			"offset", r.Offset, "type", typ, "count", n)
	}
}

// deadLetter stores one undecodable record where the log keeps them; a log
// without a dead-letter store only gets it logged.
func (rd *Reader) deadLetter(ctx context.Context, dl ingest.DeadLetter) error {
	store, ok := rd.log.(ingest.DeadLetterLog)
	if !ok {
		rd.logger.Warn("record not decoded and no dead-letter store", "reason", dl.Reason)
		return nil
	}
	return store.DeadLetter(ctx, rd.cfg.Name, dl.Reason, dl.Data)
}

// retry calls f until it succeeds, the log is closed or ctx ends, backing
// off up to five seconds and logging at most once per retryLogEvery.
func (rd *Reader) retry(ctx context.Context, what string, f func(context.Context) error) error {
	wait := 100 * time.Millisecond
	var lastLog time.Time
	for {
		attempt, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := f(attempt)
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, crmpulse.ErrClosed):
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		}
		if time.Since(lastLog) > retryLogEvery {
			lastLog = time.Now()
			rd.logger.Error(what+" failed; retrying, the partitions wait", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}
