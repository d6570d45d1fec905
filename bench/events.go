package bench

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// History makes the stored events of figures 3, 4 and their PostgreSQL
// peer: People users acting on four entities over the last 395 days, so
// that year_to_date and last_4_weeks both hold data, recent days busier:
// half the events fall in the last 60 days. Event i is the same whoever
// asks, so crmpulse and PostgreSQL hold the same events.
//
// With Events set, event i of Events comes in time order, as a CRM sends
// its changes and as a history export lists them, one in fifty late by
// up to a week. Without it (a stream of unknown length) each event's time
// is drawn at random over the span.
type History struct {
	People int
	Now    time.Time
	Events int
}

// HistoryEvent is one generated change, in the fields both stores keep.
type HistoryEvent struct {
	ID, User, Entity, Record, Action string
	At                               time.Time
}

var (
	entities = []string{"lead", "opportunity", "account", "contact"}
	// actionsByWeight gives updates most of the weight, as in a real CRM.
	actionsByWeight = []string{"created", "created", "updated", "updated", "updated",
		"updated", "updated", "updated", "updated", "deleted"}
	historySpan = 395 * 24 * time.Hour
	busySpan    = 60 * 24 * time.Hour
	lateBy      = 7 * 24 * time.Hour
)

// Event returns event i.
func (h History) Event(i int) HistoryEvent {
	r := rand.New(rand.NewPCG(uint64(i), 0x5eed))
	entity := entities[r.IntN(len(entities))]
	var age time.Duration
	if i < h.Events {
		age = ageAt(1 - (float64(i)+0.5)/float64(h.Events))
		if r.IntN(50) == 0 {
			age += time.Duration(r.Int64N(int64(lateBy)))
		}
	} else {
		age = ageAt(r.Float64())
	}
	return HistoryEvent{
		ID:     "h-" + strconv.Itoa(i),
		User:   personID(r.IntN(h.People)),
		Entity: entity,
		Record: fmt.Sprintf("%s-%d", entity[:3], r.IntN(400_000)),
		Action: actionsByWeight[r.IntN(len(actionsByWeight))],
		At:     h.Now.Add(-age - time.Minute).Truncate(time.Millisecond),
	}
}

// ageAt returns the age below which a fraction q of the events fall: half
// of them spread over the whole span, half over its busy last days.
func ageAt(q float64) time.Duration {
	span, busy := float64(historySpan), float64(busySpan)
	// Below busy, the fraction grows by 0.5/span + 0.5/busy per unit of
	// age; above it, by 0.5/span.
	if q < 0.5+0.5*busy/span {
		return time.Duration(q / (0.5/span + 0.5/busy))
	}
	return time.Duration((q - 0.5) * 2 * span)
}

// personID names person n of the directory.
func personID(n int) string { return fmt.Sprintf("p-%04d", n) }

// appendJSON writes the event as one NDJSON line of POST /v1/events.
func (e *HistoryEvent) appendJSON(b []byte) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, e.ID...)
	b = append(b, `","user":"`...)
	b = append(b, e.User...)
	b = append(b, `","entity":"`...)
	b = append(b, e.Entity...)
	b = append(b, `","record":"`...)
	b = append(b, e.Record...)
	b = append(b, `","action":"`...)
	b = append(b, e.Action...)
	b = append(b, `","at":"`...)
	b = e.At.AppendFormat(b, time.RFC3339Nano)
	return append(b, "\"}\n"...)
}
