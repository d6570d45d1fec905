package bench

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// History makes the stored events of figures 3, 4 and their PostgreSQL
// peer: People users acting on four entities over the last 395 days, so
// that year_to_date and last_4_weeks both hold data. Event i is the same
// whoever asks, so crmpulse and PostgreSQL hold the same events.
type History struct {
	People int
	Now    time.Time
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
)

// Event returns event i.
func (h History) Event(i int) HistoryEvent {
	r := rand.New(rand.NewPCG(uint64(i), 0x5eed))
	entity := entities[r.IntN(len(entities))]
	// Recent days are busier: half the events fall in the last 60 days.
	age := time.Duration(r.Int64N(int64(historySpan)))
	if r.IntN(2) == 0 {
		age = time.Duration(r.Int64N(int64(60 * 24 * time.Hour)))
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
