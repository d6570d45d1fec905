package stream

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/internal/jsontext"
)

// BatchType is the CloudEvents type of a log message that carries several
// events: its data is a JSON array of canonical events, each with its
// identity as its id. crmpulse writes every delivery this way, one message
// per run of Split, so that the log stores and delivers a few large
// messages instead of one per event; its readers take single events of
// EventType from other producers as well.
const BatchType = "crmpulse.activity.batch"

// BatchSource is the CloudEvents source of a batch, which may hold events
// of several tenants and sources.
const BatchSource = "/crmpulse"

// Bounds of one batch: a message stays far under the 1 MB that both NATS
// and Kafka accept by default, and one batch is applied in a fraction of a
// worker's transaction.
const (
	MaxBatchEvents = 1000
	MaxBatchBytes  = 256 << 10
)

// Split cuts events into the runs that each go into one message: at most
// MaxBatchEvents events and, but for a run of a single larger event, about
// MaxBatchBytes of data.
func Split(events []crmpulse.Event) [][]crmpulse.Event {
	var runs [][]crmpulse.Event
	start, bytes := 0, 0
	for i := range events {
		n := approxSize(&events[i])
		if i > start && (i-start == MaxBatchEvents || bytes+n > MaxBatchBytes) {
			runs = append(runs, events[start:i])
			start, bytes = i, 0
		}
		bytes += n
	}
	if start < len(events) {
		runs = append(runs, events[start:])
	}
	return runs
}

// approxSize is an upper bound of e's JSON but for escapes: the text of its
// fields and the names and punctuation around them.
func approxSize(e *crmpulse.Event) int {
	n := 240 + len(e.ID) + len(e.Tenant) + len(e.Source) + len(e.User) + len(e.UserName) +
		len(e.Entity) + len(e.Record) + len(e.RecordName) + len(e.Action) + len(e.Origin)
	for _, f := range e.Fields {
		n += len(f) + 3
	}
	return n
}

// AppendBatch appends events to b as a batch's data: a JSON array of the
// canonical events, each with its identity as its id, so that a derived
// identity travels with the event as the ce id does for a single one.
func AppendBatch(b []byte, events []crmpulse.Event) []byte {
	b = append(b, '[')
	for i := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = events[i].AppendJSON(b, events[i].Identity())
	}
	return append(b, ']')
}

// OpenBatch reads the events of a batch's data. Every event must be valid
// (as Open judges a single one): a batch is refused whole, naming the
// first bad event, so that none of it is half applied.
func OpenBatch(data []byte) ([]crmpulse.Event, error) {
	events, ok := readBatch(data)
	if !ok {
		events = nil
		if err := json.Unmarshal(data, &events); err != nil {
			return nil, fmt.Errorf("decode batch data: %w", err)
		}
	}
	now := time.Now()
	for i := range events {
		if err := ready(&events[i], now); err != nil {
			return nil, fmt.Errorf("invalid event %d of the batch: %w", i, err)
		}
	}
	return events, nil
}

// readBatch reads a batch's data in one pass, as json.Unmarshal would read
// it into a slice of events; ok is false for data it leaves to
// json.Unmarshal (jsontext.Reader says which). It took a tenth of the
// server's CPU in figure 1 of make bench through reflection.
func readBatch(data []byte) (events []crmpulse.Event, ok bool) {
	r := jsontext.NewReader(data)
	if r.Peek() != '[' {
		return nil, false
	}
	events = []crmpulse.Event{}
	r.Array(func() {
		events = append(events, crmpulse.Event{})
		readEvent(r, &events[len(events)-1])
	})
	return events, r.End()
}

// eventNames are the JSON names of crmpulse.Event's fields.
var eventNames = []string{"id", "tenant", "source", "user", "user_name", "entity", "record",
	"record_name", "action", "fields", "at", "received", "origin"}

// readEvent reads one event's object into e.
func readEvent(r *jsontext.Reader, e *crmpulse.Event) {
	r.Object(func(name []byte) {
		switch string(name) {
		case "id":
			jsontext.String(r, &e.ID)
		case "tenant":
			jsontext.Interned(r, &e.Tenant)
		case "source":
			jsontext.Interned(r, &e.Source)
		case "user":
			jsontext.Interned(r, &e.User)
		case "user_name":
			jsontext.Interned(r, &e.UserName)
		case "entity":
			jsontext.Interned(r, &e.Entity)
		case "record":
			jsontext.String(r, &e.Record)
		case "record_name":
			jsontext.String(r, &e.RecordName)
		case "action":
			jsontext.Interned(r, &e.Action)
		case "fields":
			r.Strings(&e.Fields)
		case "at":
			readTime(r, &e.At)
		case "received":
			readTime(r, &e.Received)
		case "origin":
			jsontext.Interned(r, &e.Origin)
		default:
			r.Unknown(name, eventNames)
		}
	})
}

// readTime reads a time as time.Time's UnmarshalJSON does; null leaves it.
func readTime(r *jsontext.Reader, t *time.Time) {
	if r.Peek() == 'n' {
		r.Skip()
		return
	}
	if raw := r.Raw(); r.Failed() || t.UnmarshalJSON(raw) != nil {
		r.Fail()
	}
}

// OpenMessage reads the events of a log message: a batch of BatchType, or
// a single event as Open reads it.
func OpenMessage(attr func(name string) string, data []byte) ([]crmpulse.Event, error) {
	if attr(AttrType) == BatchType {
		if err := checkSpecVersion(attr); err != nil {
			return nil, err
		}
		return OpenBatch(data)
	}
	e, err := Open(attr, data)
	if err != nil {
		return nil, err
	}
	return []crmpulse.Event{e}, nil
}

// BatchEnvelope returns the CloudEvents attributes of a batch (without a
// binding's prefix): id names the message, unique for its producer.
func BatchEnvelope(id string, now time.Time) map[string]string {
	return map[string]string{
		AttrSpecVersion: SpecVersion,
		AttrID:          id,
		AttrSource:      BatchSource,
		AttrType:        BatchType,
		AttrTime:        now.UTC().Format(time.RFC3339Nano),
	}
}

// BatchIDs numbers the batches of one producer: a prefix unique to the
// process, then a counter. It is safe for concurrent use.
type BatchIDs struct {
	prefix string
	next   atomic.Uint64
}

// NewBatchIDs returns batch ids that start with a random prefix, so that
// two producers, or two runs of one, never share an id.
func NewBatchIDs() *BatchIDs {
	return &BatchIDs{prefix: rand.Text()[:16] + "-"}
}

// Next returns a new id.
func (ids *BatchIDs) Next() string {
	return ids.prefix + strconv.FormatUint(ids.next.Add(1), 10)
}
