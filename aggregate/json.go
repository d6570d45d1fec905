package aggregate

import (
	"slices"
	"strconv"
	"time"

	"github.com/crmpulse/crmpulse/internal/jsontext"
)

// AppendJSON appends r as encoding/json encodes it, byte for byte, without
// reflection: a report of a thousand rows and half a year of points took
// encoding/json 2.5 ms, as much as computing it.
func (r *Report) AppendJSON(b []byte) []byte {
	b = append(b, `{"period":{"name":`...)
	b = jsontext.AppendString(b, r.Period.Name)
	b = append(b, `,"from":`...)
	b = appendTime(b, r.Period.From)
	b = append(b, `,"to":`...)
	b = appendTime(b, r.Period.To)
	b = append(b, `,"tz":`...)
	b = jsontext.AppendString(b, r.Period.TZ)
	b = append(b, `},"entities":`...)
	b = appendStrings(b, r.Entities)
	b = append(b, `,"users":`...)
	if r.Users == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range r.Users {
			if i > 0 {
				b = append(b, ',')
			}
			b = r.Users[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	b = append(b, `,"totals":`...)
	b = appendMap(b, r.Totals, appendFigures)
	b = append(b, `,"series":{"interval":`...)
	b = jsontext.AppendString(b, r.Series.Interval)
	b = append(b, `,"points":`...)
	if r.Series.Points == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, p := range r.Series.Points {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"t":`...)
			b = jsontext.AppendString(b, p.T)
			b = append(b, `,"changes":`...)
			b = appendMap(b, p.Changes, appendInt)
			b = append(b, `,"records":`...)
			b = appendMap(b, p.Records, appendInt)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `},"partial":`...)
	b = strconv.AppendBool(b, r.Partial)
	b = append(b, `,"missing_partitions":`...)
	b = appendStrings(b, r.MissingPartitions)
	return append(b, '}')
}

func (row *Row) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = jsontext.AppendString(b, row.ID)
	b = append(b, `,"name":`...)
	b = appendOptional(b, row.Name)
	b = append(b, `,"team":`...)
	b = appendOptional(b, row.Team)
	b = append(b, `,"status":`...)
	b = jsontext.AppendString(b, row.Status)
	b = append(b, `,"last_activity":`...)
	if row.LastActivity == nil {
		b = append(b, "null"...)
	} else {
		b = appendTime(b, *row.LastActivity)
	}
	b = append(b, `,"counts":`...)
	b = appendMap(b, row.Counts, appendFigures)
	b = append(b, `,"total":{"changes":`...)
	b = strconv.AppendInt(b, int64(row.Total.Changes), 10)
	b = append(b, `,"records":`...)
	b = strconv.AppendInt(b, int64(row.Total.Records), 10)
	return append(b, "}}"...)
}

func appendFigures(f Figures, b []byte) []byte {
	for _, v := range [...]struct {
		name string
		n    int
	}{{`{"created":`, f.Created}, {`,"updated":`, f.Updated}, {`,"deleted":`, f.Deleted},
		{`,"restored":`, f.Restored}, {`,"changes":`, f.Changes}, {`,"records":`, f.Records}} {
		b = append(b, v.name...)
		b = strconv.AppendInt(b, int64(v.n), 10)
	}
	return append(b, '}')
}

func appendInt(n int, b []byte) []byte { return strconv.AppendInt(b, int64(n), 10) }

// appendMap appends m with its keys sorted, as encoding/json does.
func appendMap[V any](b []byte, m map[string]V, value func(V, []byte) []byte) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	var room [8]string // a report's maps are by entity: a few keys
	keys := room[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsontext.AppendString(b, k)
		b = append(b, ':')
		b = value(m[k], b)
	}
	return append(b, '}')
}

func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsontext.AppendString(b, s)
	}
	return append(b, ']')
}

func appendOptional(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return jsontext.AppendString(b, *s)
}

func appendTime(b []byte, t time.Time) []byte {
	if y := t.Year(); y < 0 || y > 9999 {
		// encoding/json fails on these; no stamp of the state is one.
		return append(b, "null"...)
	}
	return t.AppendFormat(b, `"`+time.RFC3339Nano+`"`)
}
