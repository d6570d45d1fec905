// Package stream puts canonical events on an event log and reads them back.
// The log itself is a backend in a subpackage (jetstream, kafka); this
// package holds what every backend shares: the CloudEvents envelope in
// binary content mode and the partitioning of events by key.
package stream

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/crmpulse/crmpulse"
)

// CloudEvents attribute values for crmpulse activity events.
const (
	SpecVersion = "1.0"
	EventType   = "crmpulse.activity"
	ContentType = "application/json"
)

// Attr names the CloudEvents attributes crmpulse writes; a protocol binding
// adds its own prefix (ce_ on Kafka, ce- on NATS).
const (
	AttrSpecVersion = "specversion"
	AttrID          = "id"
	AttrSource      = "source"
	AttrType        = "type"
	AttrTime        = "time"
)

// Open reads a single event from its CloudEvents attributes and data, as
// another producer writes it (crmpulse writes batches, see OpenMessage).
// The ce id wins over an id in the data; a tenant or source missing from
// the data is taken from the ce source.
func Open(attr func(name string) string, data []byte) (crmpulse.Event, error) {
	var e crmpulse.Event
	if err := checkSpecVersion(attr); err != nil {
		return e, err
	}
	if t := attr(AttrType); t != "" && t != EventType {
		return e, fmt.Errorf("unexpected cloudevents type %q, want %s", t, EventType)
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("decode event data: %w", err)
	}
	if id := attr(AttrID); id != "" {
		e.ID = id
	}
	if src, ok := strings.CutPrefix(attr(AttrSource), "/crmpulse/"); ok {
		source, tenant, _ := strings.Cut(src, "/")
		if e.Source == "" {
			e.Source = source
		}
		if e.Tenant == "" {
			e.Tenant = tenant
		}
	}
	if err := ready(&e, time.Now()); err != nil {
		return e, fmt.Errorf("invalid event: %w", err)
	}
	return e, nil
}

func checkSpecVersion(attr func(name string) string) error {
	if v := attr(AttrSpecVersion); v != "" && v != SpecVersion {
		return fmt.Errorf("unsupported cloudevents specversion %q", v)
	}
	return nil
}

// ready normalizes e and says what is first wrong with it, judged at now.
func ready(e *crmpulse.Event, now time.Time) error {
	e.Normalize()
	if errs := e.Validate(now); len(errs) > 0 {
		return fmt.Errorf("%s %s", errs[0].Field, errs[0].Detail)
	}
	return nil
}

// PartitionKey is the key that keeps one user's events in order: tenant,
// source and user id.
func PartitionKey(e *crmpulse.Event) string {
	return e.Tenant + "\x00" + e.Source + "\x00" + e.User
}

// Partition maps a key onto one of n partitions.
func Partition(key string, n int) int32 {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int32(h.Sum32() % uint32(n))
}
