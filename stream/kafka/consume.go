package kafka

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/stream"
)

// Consume reads every partition of the topic on a connection of its own,
// each partition from the offset resume gives for it, and hands the
// records to handle one partition's batch at a time, in log order. An
// offset that is no longer in the log (deleted by retention) restarts the
// partition at its earliest record. Consume returns when ctx is done, with
// its error, or when handle fails, with handle's error.
//
// TODO(kafka): partitions added to the topic after Consume started are
// not read until Consume is called again.
func (l *Log) Consume(ctx context.Context, resume crmpulse.ResumeFunc, handle crmpulse.BatchHandler) error {
	if l.closed.Load() {
		return crmpulse.ErrClosed
	}
	n, err := l.partitions(ctx)
	if err != nil {
		return err
	}
	offsets := make(map[int32]kgo.Offset, n)
	for p := range n {
		offsets[p] = kgo.NewOffset().At(resume(p))
	}
	cl, err := kgo.NewClient(append(l.consumerOpts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{l.cfg.Topic: offsets}))...)
	if err != nil {
		return fmt.Errorf("open kafka consumer: %w", err)
	}
	defer cl.Close()
	l.logger.Info("consuming", "topic", l.cfg.Topic, "partitions", n)
	return l.poll(ctx, cl, handle, false)
}

// ConsumeGroup joins the consumer group Config.Group on a connection of its
// own and consumes the partitions the group assigns to this member, each
// from the offset g.Resume gives when it is assigned; see stream.GroupLog.
// Offsets are never committed to Kafka: the worker's state is the only
// record of its position.
func (l *Log) ConsumeGroup(ctx context.Context, g stream.Group, handle crmpulse.BatchHandler) error {
	if l.closed.Load() {
		return crmpulse.ErrClosed
	}
	if g.Resume == nil {
		return errors.New("kafka: consume group: Group.Resume is nil")
	}
	logger := l.logger.With("group", l.cfg.Group)
	notify := func(verb string, fn func(context.Context, []int32)) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) {
			parts := slices.Sorted(slices.Values(assigned[l.cfg.Topic]))
			if len(parts) == 0 {
				return
			}
			logger.Info("partitions "+verb, "topic", l.cfg.Topic, "partitions", parts)
			if fn != nil {
				fn(ctx, parts)
			}
		}
	}
	opts := l.consumerOpts()
	if l.cfg.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(l.cfg.SessionTimeout),
			kgo.HeartbeatInterval(max(l.cfg.SessionTimeout/6, 100*time.Millisecond)))
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumerGroup(l.cfg.Group),
		kgo.ConsumeTopics(l.cfg.Topic),
		kgo.DisableAutoCommit(),
		// Rebalances wait between polls, so a partition moves to another
		// member only after the handler has returned for its last batch.
		kgo.BlockRebalanceOnPoll(),
		// Small fetches keep a poll short, so that a rebalance never
		// waits long for a member catching up on a backlog (a member that
		// keeps it waiting past the timeout is thrown out of the group).
		kgo.FetchMaxBytes(groupFetchBytes),
		kgo.FetchMaxPartitionBytes(groupFetchBytes/4),
		kgo.OnPartitionsAssigned(notify("assigned", g.Assigned)),
		kgo.OnPartitionsRevoked(notify("revoked", g.Revoked)),
		kgo.OnPartitionsLost(notify("lost", g.Revoked)),
		kgo.AdjustFetchOffsetsFn(func(_ context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
			for p := range offsets[l.cfg.Topic] {
				offsets[l.cfg.Topic][p] = kgo.NewOffset().At(g.Resume(p)).WithEpoch(-1)
			}
			return offsets, nil
		}),
	)...)
	if err != nil {
		return fmt.Errorf("open kafka group consumer: %w", err)
	}
	defer cl.Close()
	// Close leaves the group, which waits for the rebalance a poll holds.
	defer cl.AllowRebalance()
	logger.Info("joining group", "topic", l.cfg.Topic)
	return l.poll(ctx, cl, handle, true)
}

// groupFetchBytes bounds what one poll of a group member brings: a few
// thousand events, applied in well under a second.
const groupFetchBytes = 4 << 20

func (l *Log) consumerOpts() []kgo.Opt {
	return append(slices.Clip(l.opts),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Skip the aborted transactions of other (transactional) producers.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
}

// partitions returns how many partitions the event topic has.
func (l *Log) partitions(ctx context.Context) (int32, error) {
	topics, err := kadm.NewClient(l.client).ListTopics(ctx, l.cfg.Topic)
	if err == nil {
		err = topics.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("describe topic %s: %w", l.cfg.Topic, err)
	}
	return int32(len(topics[l.cfg.Topic].Partitions)), nil
}

// poll hands the fetched records to handle until ctx is done or handle
// fails. In a group, it lets the group rebalance after each poll's batches.
func (l *Log) poll(ctx context.Context, cl *kgo.Client, handle crmpulse.BatchHandler, group bool) error {
	for {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		if fetches.IsClientClosed() {
			return crmpulse.ErrClosed
		}
		// The client retries what can be retried; what remains is logged
		// and the partition is fetched again on the next poll.
		fetches.EachError(func(topic string, p int32, err error) {
			l.logger.Warn("fetch failed", "topic", topic, "partition", p, "err", err)
		})
		var err error
		fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if err != nil || len(ftp.Records) == 0 {
				return
			}
			var batch []crmpulse.Record
			if batch, err = l.decode(ctx, ftp.Records); err == nil && len(batch) > 0 {
				err = handle(ctx, batch)
			}
		})
		if err != nil {
			return err
		}
		if group {
			cl.AllowRebalance()
		}
	}
}

// decode turns records into a batch, and sends those it cannot decode to
// the dead-letter topic. The events of one record share its offset.
func (l *Log) decode(ctx context.Context, records []*kgo.Record) ([]crmpulse.Record, error) {
	batch := make([]crmpulse.Record, 0, len(records))
	for _, r := range records {
		events, err := decodeRecord(r)
		if err != nil {
			if err := l.deadLetter(ctx, r, err); err != nil {
				return nil, err
			}
			continue
		}
		for _, e := range events {
			batch = append(batch, crmpulse.Record{Partition: r.Partition, Offset: r.Offset, Event: e})
		}
	}
	return batch, nil
}

// decodeRecord reads the events of a record in CloudEvents binary content
// mode: a batch, or a single event.
func decodeRecord(r *kgo.Record) ([]crmpulse.Event, error) {
	if ct := header(r, HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != stream.ContentType {
			return nil, fmt.Errorf("content-type %q, want %s in binary content mode", ct, stream.ContentType)
		}
	}
	return stream.OpenMessage(func(name string) string { return header(r, headerPrefix+name) }, r.Value)
}

// header returns the last value of the header key, or "".
func header(r *kgo.Record, key string) string {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return string(r.Headers[i].Value)
		}
	}
	return ""
}

// deadLetter stores r on the dead-letter topic with its headers, the reason
// and where it was read, retrying until it is stored or ctx is done: the
// partition does not move past a record that is neither applied nor kept.
// A record whose dead letter was stored but whose partition position was
// not yet committed past it is sent again after a restart.
func (l *Log) deadLetter(ctx context.Context, r *kgo.Record, reason error) error {
	dl := &kgo.Record{Topic: l.cfg.DeadLetterTopic, Key: r.Key, Value: r.Value}
	dl.Headers = append(slices.Clip(r.Headers),
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(reason.Error())},
		kgo.RecordHeader{Key: HeaderOrigin, Value: fmt.Appendf(nil, "%s/%d@%d", r.Topic, r.Partition, r.Offset)},
	)
	log := l.logger.With("topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
	for {
		err := l.client.ProduceSync(ctx, dl).FirstErr()
		switch {
		case err == nil:
			log.Warn("record sent to dead letters", "reason", reason.Error())
			return nil
		case errors.Is(err, kgo.ErrClientClosed):
			return crmpulse.ErrClosed
		case ctx.Err() != nil:
			return ctx.Err()
		}
		log.Error("dead letter not stored, retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// End returns the offset of the last record of each partition of the event
// topic (-1 for an empty one), so that a caller can tell whether its
// consumer has caught up.
func (l *Log) End(ctx context.Context) (map[int32]int64, error) {
	ends, err := kadm.NewClient(l.client).ListEndOffsets(ctx, l.cfg.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", l.cfg.Topic, err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset - 1 })
	return out, nil
}
