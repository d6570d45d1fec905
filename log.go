package crmpulse

import (
	"context"
	"errors"
)

// Record is an event at its position in the event log. The events of one
// log message share its offset.
type Record struct {
	Partition int32
	Offset    int64
	Event     Event
}

// ResumeFunc tells a consumer where to start in a partition: the offset of
// the first record to deliver. It returns 0 for a partition never consumed.
type ResumeFunc func(partition int32) int64

// BatchHandler applies a batch of records, all of one partition and in log
// order. A consumer does not deliver the next batch of that partition until
// the handler returns; an error stops the consumer. A batch holds every
// record of each offset it holds, and a handler records an offset as
// applied only with all of its records: resuming after it skips them all.
type BatchHandler func(ctx context.Context, batch []Record) error

// Log is the event log between ingest and the stream workers.
//
// Append and Consume may be called concurrently. Append returns only once
// every event is durable in the log (acknowledged by it); on an error some
// of the events may have been stored, and since the state applies each
// event identity once, the caller may retry the whole batch. Consume blocks
// until ctx is done or the handler fails; records that cannot be decoded go
// to the dead-letter destination with the reason and never reach the
// handler. Close releases the log's connections; the caller of Open closes.
type Log interface {
	Append(ctx context.Context, events []Event) error
	Consume(ctx context.Context, resume ResumeFunc, handle BatchHandler) error
	Close() error
}

// ErrClosed is returned by a Log that was used after Close.
var ErrClosed = errors.New("crmpulse: log closed")

// Directory maps the user ids of the sources to people. Its methods may be
// called concurrently.
type Directory interface {
	// People returns every person, in a stable order.
	People() []Person
	// Resolve returns the id of the person that user acts as in source: the
	// person whose ids name it, else the person whose id equals it.
	Resolve(source, user string) (personID string, ok bool)
}

// DeltaSubject is the NATS subject on which workers publish, after each
// commit, the events they applied (a JSON array of events).
const DeltaSubject = "crmpulse.deltas"
