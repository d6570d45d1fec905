package aggregate

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/crmpulse/crmpulse"
)

// eventCodecV1 marks the transaction index's binary encoding. Values
// written before it are JSON objects and start with '{'.
const eventCodecV1 = 1

// encodeEvent is the transaction index's value: a version byte, then
// length-prefixed strings and varint times. It is about a third of the
// JSON and several times cheaper to write and read.
func encodeEvent(buf []byte, e *crmpulse.Event) []byte {
	b := append(buf, eventCodecV1)
	for _, s := range [...]string{e.ID, e.Tenant, e.Source, e.User, e.UserName, e.Entity,
		e.Record, e.RecordName, string(e.Action), e.Origin} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Fields)))
	for _, f := range e.Fields {
		b = appendString(b, f)
	}
	b = binary.AppendVarint(b, e.At.UnixNano())
	var received int64
	if !e.Received.IsZero() {
		received = e.Received.UnixNano()
	}
	return binary.AppendVarint(b, received)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeEvent reads a value of the transaction index, in either encoding.
func decodeEvent(v []byte, e *crmpulse.Event) error {
	if len(v) > 0 && v[0] == '{' {
		return json.Unmarshal(v, e)
	}
	d := eventDecoder{b: v}
	if d.byte() != eventCodecV1 {
		return fmt.Errorf("transaction value version %d: %w", v[0], errCorrupt)
	}
	for _, s := range [...]*string{&e.ID, &e.Tenant, &e.Source, &e.User, &e.UserName, &e.Entity,
		&e.Record, &e.RecordName, (*string)(&e.Action), &e.Origin} {
		*s = d.string()
	}
	if n := d.uvarint(); n > 0 && n <= uint64(len(d.b)) {
		e.Fields = make([]string, n)
		for i := range e.Fields {
			e.Fields[i] = d.string()
		}
	}
	e.At = time.Unix(0, d.varint()).UTC()
	if r := d.varint(); r != 0 {
		e.Received = time.Unix(0, r).UTC()
	}
	if d.bad {
		return fmt.Errorf("transaction value: %w", errCorrupt)
	}
	return nil
}

// eventDecoder reads decodeEvent's fields; a short or malformed value sets
// bad and yields zeros from then on.
type eventDecoder struct {
	b   []byte
	bad bool
}

func (d *eventDecoder) byte() byte {
	if len(d.b) == 0 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *eventDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *eventDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *eventDecoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.bad = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
