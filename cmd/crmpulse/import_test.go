package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
)

// TestEventsJSONIsWhatMarshalWrites checks that a batch crmpulse import
// posts is written byte for byte as json.Marshal writes it, ids as given.
func TestEventsJSONIsWhatMarshalWrites(t *testing.T) {
	at := time.Date(2026, 1, 2, 10, 0, 0, 500, time.UTC)
	for _, events := range [][]crmpulse.Event{
		{},
		{{Tenant: "acme", Source: "crm", User: "u1", Entity: "lead", Record: "L-1", Action: crmpulse.Created, At: at}},
		{
			{ID: "row-2", Tenant: "acme", Source: "crm", User: "005", UserName: "Ana Ruiz", Entity: "opportunity",
				Record: "006", RecordName: "Smith & Co <renewal> \"q\" é\u2028", Action: crmpulse.Updated,
				Fields: []string{"StageName", ""}, At: at},
			{ID: "row-3", Tenant: "acme", Source: "crm", Entity: "contact", Record: "C\x01", Action: crmpulse.Deleted,
				Fields: []string{}, At: at.In(time.FixedZone("x", 3600))},
		},
	} {
		want, err := json.Marshal(events)
		if err != nil {
			t.Fatal(err)
		}
		if got := eventsJSON(events); string(got) != string(want) {
			t.Errorf("eventsJSON:\n got %s\nwant %s", got, want)
		}
	}
}
