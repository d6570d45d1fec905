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
}

// Publish window: the client refuses more than maxPending unacknowledged
// messages; Append publishes in chunks that each take their room at once.
const (
	maxPending  = 8192
	windowSize  = 8000
	appendChunk = 1000
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
		window: semaphore.NewWeighted(windowSize)}, nil
}

// Append publishes the events and waits until JetStream has stored every
// one of them. Under a burst it waits for room in the publish window.
func (l *Log) Append(ctx context.Context, events []crmpulse.Event) error {
	for start := 0; start < len(events); start += appendChunk {
		if err := l.appendChunk(ctx, events[start:min(start+appendChunk, len(events))]); err != nil {
			return err
		}
	}
	return nil
}

func (l *Log) appendChunk(ctx context.Context, events []crmpulse.Event) error {
	// The whole chunk takes its room at once, so that concurrent Appends
	// never each hold part of the window while waiting for the rest.
	if err := l.window.Acquire(ctx, int64(len(events))); err != nil {
		return err
	}
	defer l.window.Release(int64(len(events)))
	futures := make([]jetstream.PubAckFuture, 0, len(events))
	for i := range events {
		msg, err := encode(&events[i])
		if err != nil {
			return err
		}
		f, err := l.js.PublishMsgAsync(msg)
		if err != nil {
			return fmt.Errorf("publish event: %w", err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish event: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func encode(e *crmpulse.Event) (*nats.Msg, error) {
	attrs, data, err := stream.Envelope(e)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(EventsSubject)
	for k, v := range attrs {
		msg.Header.Set(headerPrefix+k, v)
	}
	msg.Header.Set("Content-Type", stream.ContentType)
	msg.Data = data
	return msg, nil
}

// Consume delivers the stream from the offset resume gives for partition 0,
// in batches of what has arrived, up to 1,000 records.
func (l *Log) Consume(ctx context.Context, resume crmpulse.ResumeFunc, handle crmpulse.BatchHandler) error {
	start := uint64(max(resume(0), 1))
	cons, err := l.js.OrderedConsumer(ctx, EventsStream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   start,
	})
	if err != nil {
		return fmt.Errorf("create consumer: %w", err)
	}
	msgs := make(chan jetstream.Msg, 4096)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		}
	},
		jetstream.PullMaxMessages(2048))
	if err != nil {
		return fmt.Errorf("consume %s: %w", EventsStream, err)
	}
	defer cc.Stop()
	l.logger.Info("consuming", "partition", 0, "offset", start)

	const maxBatch = 1000
	batch := make([]crmpulse.Record, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-msgs:
			if batch, err = l.add(ctx, batch, m); err != nil {
				return err
			}
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case m := <-msgs:
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

// add decodes m onto batch, or sends it to the dead letters.
// It fails only when ctx ends before a dead letter is stored: the batch must
// then not be handled, or its position would pass a record that is nowhere.
func (l *Log) add(ctx context.Context, batch []crmpulse.Record, m jetstream.Msg) ([]crmpulse.Record, error) {
	meta, err := m.Metadata()
	if err != nil {
		l.logger.Error("message without metadata", "err", err)
		return batch, nil
	}
	e, err := stream.Open(func(name string) string { return m.Headers().Get(headerPrefix + name) }, m.Data())
	if err != nil {
		return batch, l.deadLetter(ctx, m, meta.Sequence.Stream, err)
	}
	return append(batch, crmpulse.Record{Partition: 0, Offset: int64(meta.Sequence.Stream), Event: e}), nil
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
