// Package jetstream is the event log on NATS JetStream: one file-backed
// stream holds the events, a second the dead letters. It is the default log
// of the one-process shape, where the NATS server is embedded.
package jetstream

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/semaphore"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/stream"
)

// Names of the streams and subjects.
const (
	EventsStream     = "CRMPULSE_EVENTS"
	EventsSubject    = "crmpulse.events"
	DeadLetterStream = "CRMPULSE_DEADLETTER"
	DeadLetterSubj   = "crmpulse.deadletter"
	// HeaderReason carries why a record went to the dead letters.
	HeaderReason = "Crmpulse-Reason"
)

// headerPrefix is the CloudEvents NATS binding's prefix for attributes.
const headerPrefix = "ce-"

// Log is a crmpulse.Log on JetStream. It has one partition: the stream's
// sequence is the offset.
type Log struct {
	js     jetstream.JetStream
	nc     *nats.Conn
	logger *slog.Logger
	// window bounds the publishes awaiting an acknowledgement across all
	// Appends below the client's limit, so that a burst of requests waits
	// for room instead of failing.
	window *semaphore.Weighted
	ids    *stream.BatchIDs
}

// maxPending is the most unacknowledged messages the client allows; the
// publish window stays under it.
const (
	maxPending = 8192
	windowSize = 8000
)

var _ crmpulse.Log = (*Log)(nil)

// Open creates the streams when missing and returns the log. The caller
// keeps ownership of nc.
func Open(ctx context.Context, nc *nats.Conn, logger *slog.Logger) (*Log, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(maxPending))
	if err != nil {
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	for name, subject := range map[string]string{EventsStream: EventsSubject, DeadLetterStream: DeadLetterSubj} {
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:      name,
			Subjects:  []string{subject},
			Storage:   jetstream.FileStorage,
			Retention: jetstream.LimitsPolicy,
		})
		if err != nil {
			return nil, fmt.Errorf("create stream %s: %w", name, err)
		}
	}
	return &Log{js: js, nc: nc, logger: logger.With("component", "jetstream"),
		window: semaphore.NewWeighted(windowSize), ids: stream.NewBatchIDs()}, nil
}

// Append publishes the events, in messages of stream.Split's runs, and
// waits until JetStream has stored every one of them. Under a burst it
// waits for room in the publish window.
func (l *Log) Append(ctx context.Context, events []crmpulse.Event) error {
	runs := stream.Split(events)
	// The whole delivery takes its room at once, so that concurrent
	// Appends never each hold part of the window while waiting for the
	// rest.
	if err := l.window.Acquire(ctx, int64(len(runs))); err != nil {
		return err
	}
	defer l.window.Release(int64(len(runs)))
	futures := make([]jetstream.PubAckFuture, 0, len(runs))
	for _, run := range runs {
		f, err := l.js.PublishMsgAsync(l.encode(run))
		if err != nil {
			return fmt.Errorf("publish events: %w", err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish events: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// encode puts events in one message: a CloudEvents batch in binary content
// mode.
func (l *Log) encode(events []crmpulse.Event) *nats.Msg {
	msg := nats.NewMsg(EventsSubject)
	for k, v := range stream.BatchEnvelope(l.ids.Next(), time.Now()) {
		msg.Header.Set(headerPrefix+k, v)
	}
	msg.Header.Set("Content-Type", stream.ContentType)
	msg.Data = stream.AppendBatch(nil, events)
	return msg
}

// Consume delivers the stream from the offset resume gives for partition 0,
// in batches of the messages that have arrived, of up to maxBatch events
// but for a single larger message. The events of one message share its
// sequence as their offset. Messages are decoded as they arrive, while
// the handler applies the batch before.
func (l *Log) Consume(ctx context.Context, resume crmpulse.ResumeFunc, handle crmpulse.BatchHandler) error {
	start := uint64(max(resume(0), 1))
	cons, err := l.js.OrderedConsumer(ctx, EventsStream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   start,
	})
	if err != nil {
		return fmt.Errorf("create consumer: %w", err)
	}
	decoded := make(chan message, 64)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case decoded <- l.decode(m):
		case <-ctx.Done():
		}
	},
		// Bytes, not messages, bound what waits in the client: a batch
		// message may be a thousand events.
		jetstream.PullMaxBytes(pullBytes))
	if err != nil {
		return fmt.Errorf("consume %s: %w", EventsStream, err)
	}
	defer cc.Stop()
	l.logger.Info("consuming", "partition", 0, "offset", start)

	batch := make([]crmpulse.Record, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-decoded:
			if batch, err = l.add(ctx, batch, m); err != nil {
				return err
			}
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case m := <-decoded:
				if batch, err = l.add(ctx, batch, m); err != nil {
					return err
				}
			default:
				break drain
			}
		}
		if len(batch) == 0 {
			continue
		}
		if err := handle(ctx, batch); err != nil {
			return err
		}
	}
}

// Consumer bounds: the events handed to the handler at once, and the bytes
// of messages fetched ahead of it.
const (
	maxBatch  = 2000
	pullBytes = 4 << 20
)

// message is a log message as the consumer decoded it: its events, or why
// they could not be read.
type message struct {
	msg    jetstream.Msg
	seq    uint64
	events []crmpulse.Event
	err    error
}

func (l *Log) decode(m jetstream.Msg) message {
	meta, err := m.Metadata()
	if err != nil {
		return message{msg: m, err: err}
	}
	events, err := stream.OpenMessage(func(name string) string { return m.Headers().Get(headerPrefix + name) }, m.Data())
	return message{msg: m, seq: meta.Sequence.Stream, events: events, err: err}
}

// add puts m's events onto batch, or sends m to the dead letters.
// It fails only when ctx ends before a dead letter is stored: the batch must
// then not be handled, or its position would pass a record that is nowhere.
func (l *Log) add(ctx context.Context, batch []crmpulse.Record, m message) ([]crmpulse.Record, error) {
	switch {
	case m.seq == 0:
		l.logger.Error("message without metadata", "err", m.err)
		return batch, nil
	case m.err != nil:
		return batch, l.deadLetter(ctx, m.msg, m.seq, m.err)
	}
	for _, e := range m.events {
		batch = append(batch, crmpulse.Record{Partition: 0, Offset: int64(m.seq), Event: e})
	}
	return batch, nil
}

// deadLetter stores m with the reason, retrying until it is stored or ctx
// ends.
func (l *Log) deadLetter(ctx context.Context, m jetstream.Msg, seq uint64, reason error) error {
	dl := nats.NewMsg(DeadLetterSubj)
	for k, v := range m.Headers() {
		dl.Header[k] = v
	}
	dl.Header.Set(HeaderReason, reason.Error())
	dl.Header.Set("Crmpulse-Offset", fmt.Sprint(seq))
	dl.Data = m.Data()
	for {
		_, err := l.js.PublishMsg(ctx, dl)
		if err == nil {
			break
		}
		l.logger.Error("dead letter not stored, retrying", "offset", seq, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	l.logger.Warn("record sent to dead letters", "offset", seq, "reason", reason.Error())
	return nil
}

// DeadLetter stores data that could not be decoded on the dead-letter
// stream, with its source and the reason.
func (l *Log) DeadLetter(ctx context.Context, source, reason string, data []byte) error {
	msg := nats.NewMsg(DeadLetterSubj)
	msg.Header.Set(HeaderReason, reason)
	msg.Header.Set("Crmpulse-Source", source)
	msg.Data = data
	if _, err := l.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("store dead letter: %w", err)
	}
	return nil
}

// Close does nothing: the connection belongs to the caller.
func (l *Log) Close() error { return nil }

// End returns the offset of the last record in each partition (-1 for an
// empty one), so that a caller can tell whether its consumer has caught up.
func (l *Log) End(ctx context.Context) (map[int32]int64, error) {
	s, err := l.js.Stream(ctx, EventsStream)
	if err != nil {
		return nil, fmt.Errorf("stream info: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream info: %w", err)
	}
	if info.State.LastSeq == 0 {
		return map[int32]int64{0: -1}, nil
	}
	return map[int32]int64{0: int64(info.State.LastSeq)}, nil
}
