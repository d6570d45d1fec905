package crmpulse

import (
	"time"

	"github.com/crmpulse/crmpulse/internal/jsontext"
)

// AppendJSON appends e as json.Marshal writes it (the same names,
// omissions, escapes and time format), with id as its id: the event's own
// ID where it is posted, its identity where a derived one must travel
// with it (the log's batches). Without reflection, for the paths that
// write many events: the log and crmpulse import.
func (e *Event) AppendJSON(b []byte, id string) []byte {
	b = appendField(b, `{"id":`, id)
	b = appendField(b, `,"tenant":`, e.Tenant)
	b = appendField(b, `,"source":`, e.Source)
	b = appendField(b, `,"user":`, e.User)
	if e.UserName != "" {
		b = appendField(b, `,"user_name":`, e.UserName)
	}
	b = appendField(b, `,"entity":`, e.Entity)
	b = appendField(b, `,"record":`, e.Record)
	if e.RecordName != "" {
		b = appendField(b, `,"record_name":`, e.RecordName)
	}
	b = appendField(b, `,"action":`, string(e.Action))
	if len(e.Fields) > 0 {
		b = append(b, `,"fields":[`...)
		for i, f := range e.Fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsontext.AppendString(b, f)
		}
		b = append(b, ']')
	}
	b = appendTime(append(b, `,"at":`...), e.At)
	if !e.Received.IsZero() {
		b = appendTime(append(b, `,"received":`...), e.Received)
	}
	if e.Origin != "" {
		b = appendField(b, `,"origin":`, e.Origin)
	}
	return append(b, '}')
}

func appendField(b []byte, name, value string) []byte {
	return jsontext.AppendString(append(b, name...), value)
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	return append(t.AppendFormat(b, time.RFC3339Nano), '"')
}
