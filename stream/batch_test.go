package stream

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
)

// jsonOf is what json.Marshal writes for events, each with its identity
// as its id: what AppendBatch must write.
func jsonOf(t testing.TB, events []crmpulse.Event) string {
	t.Helper()
	withIDs := make([]crmpulse.Event, len(events))
	for i, e := range events {
		e.ID = e.Identity()
		withIDs[i] = e
	}
	b, err := json.Marshal(withIDs)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAppendBatchIsTheCanonicalJSON(t *testing.T) {
	at := time.Date(2025, 3, 1, 9, 30, 0, 123_000_000, time.UTC)
	tests := []struct {
		name   string
		events []crmpulse.Event
	}{
		{"empty", []crmpulse.Event{}},
		{"minimal", []crmpulse.Event{{Tenant: "acme", Source: "api", Entity: "lead", Record: "L-1",
			Action: crmpulse.Created, At: at}}},
		{"every field", []crmpulse.Event{{ID: "evt-1", Tenant: "acme", Source: "hubspot", User: "u-1",
			UserName: "Ann", Entity: "opportunity", Record: "O-9", RecordName: "Renewal",
			Action: crmpulse.Updated, Fields: []string{"stage", "amount"}, At: at,
			Received: at.Add(time.Second), Origin: "CRM_UI"}}},
		{"hostile text", []crmpulse.Event{{ID: "a\"b\\c", Tenant: "t\x00\x01\x1f", Source: "s\n\r\t\b\f",
			User: "<script>&amp;</script>", Entity: "lead", Record: "bad \xff\xfe utf-8",
			RecordName: "line\u2028para\u2029 é 日本 🎉", Action: crmpulse.Deleted, Fields: []string{""},
			At: at}}},
		{"zone offset", []crmpulse.Event{{ID: "z", Tenant: "t", Source: "s", Entity: "lead", Record: "r",
			Action: crmpulse.Restored, At: at.In(time.FixedZone("x", 5*3600+1800))}}},
		{"several", []crmpulse.Event{
			{ID: "1", Tenant: "t", Source: "s", User: "u", Entity: "lead", Record: "r", Action: crmpulse.Created, At: at},
			{ID: "2", Tenant: "t", Source: "s", User: "v", Entity: "contact", Record: "q", Action: crmpulse.Updated, At: at},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := string(AppendBatch(nil, tt.events)), jsonOf(t, tt.events); got != want {
				t.Errorf("AppendBatch:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestOpenBatchRefusesABadEvent(t *testing.T) {
	at := time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC)
	good := crmpulse.Event{ID: "1", Tenant: "t", Source: "s", User: "u", Entity: "lead", Record: "r",
		Action: crmpulse.Created, At: at}
	bad := good
	bad.Action = "exploded"
	_, err := OpenBatch(AppendBatch(nil, []crmpulse.Event{good, bad}))
	if err == nil || !strings.Contains(err.Error(), "event 1 of the batch: action") {
		t.Errorf("OpenBatch of a batch with a bad second event: %v, want it named", err)
	}
	if _, err := OpenBatch([]byte(`{"not":"an array"}`)); err == nil {
		t.Error("OpenBatch of an object: nil error")
	}
}

func TestSplitBoundsEveryRun(t *testing.T) {
	at := time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC)
	big := strings.Repeat("x", MaxBatchBytes)
	events := make([]crmpulse.Event, 2500)
	for i := range events {
		events[i] = crmpulse.Event{Tenant: "t", Source: "s", Entity: "lead", Record: "r", Action: crmpulse.Created, At: at}
	}
	events[1700].RecordName = big // a run of its own
	var n int
	for _, run := range Split(events) {
		n += len(run)
		data := AppendBatch(nil, run)
		if len(run) > MaxBatchEvents {
			t.Errorf("a run of %d events, want at most %d", len(run), MaxBatchEvents)
		}
		if len(run) > 1 && len(data) > MaxBatchBytes {
			t.Errorf("a run of %d events in %d bytes, want at most %d", len(run), len(data), MaxBatchBytes)
		}
	}
	if n != len(events) {
		t.Errorf("runs hold %d events, want %d", n, len(events))
	}
	if runs := Split(nil); len(runs) != 0 {
		t.Errorf("Split(nil) = %d runs, want none", len(runs))
	}
}

// FuzzAppendBatch checks that any text in any field is written as
// json.Marshal writes it.
func FuzzAppendBatch(f *testing.F) {
	f.Add("evt-1", "acme", "Ann", "O-9", "Renewal", "stage", int64(1740821400123000000))
	f.Add("\"\\", "\x00\xff", "\u2028", "日本", "<&>", "", int64(0))
	f.Fuzz(func(t *testing.T, id, tenant, user, record, name, field string, ns int64) {
		e := crmpulse.Event{ID: id, Tenant: tenant, Source: "s", User: user, Entity: "lead",
			Record: record, RecordName: name, Action: crmpulse.Updated, Fields: []string{field},
			At: time.Unix(0, ns).UTC()}
		events := []crmpulse.Event{e}
		got := AppendBatch(nil, events)
		if want := jsonOf(t, events); string(got) != want {
			t.Fatalf("AppendBatch:\n got %s\nwant %s", got, want)
		}
	})
}

// FuzzReadBatch checks that readBatch reads what json.Unmarshal reads, and
// takes nothing json.Unmarshal refuses: OpenBatch falls back to it for
// whatever readBatch leaves.
func FuzzReadBatch(f *testing.F) {
	at := time.Date(2025, 3, 1, 9, 30, 0, 123_000_000, time.UTC)
	f.Add(string(AppendBatch(nil, []crmpulse.Event{{ID: "evt-1", Tenant: "acme", Source: "hubspot",
		User: "u-1", UserName: "Ann", Entity: "opportunity", Record: "O-9", RecordName: "Renewal",
		Action: crmpulse.Updated, Fields: []string{"stage", "amount"}, At: at,
		Received: at.Add(time.Second), Origin: "CRM_UI"}})))
	for _, s := range []string{`[]`, ` [ ] `, `null`, `[null]`, `[{}]`, `[{"ID":"x"}]`, `[{"id":"x","id":null}]`,
		`[{"fields":[]}]`, `[{"fields":null}]`, `[{"fields":["a",""]}]`, `[{"at":"2025-03-01T09:30:00+05:30"}]`,
		`[{"at":null,"received":"2025-03-01T09:30:00Z"}]`, `[{"at":"soon"}]`, `[{"at":1}]`,
		`[{"extra":{"a":[1,-2.5e3,true,false,null,"x"]}}]`, `[{"id":"\u00e9"}]`, `[{"id":"é"}]`,
		`[{"id":"\xff"}]`, `[{"id":1}]`, `[{"tenant":"a"},{"tenant":"a"}]`, `[{}] x`, `[{},]`, `[01]`,
		`[{"ſource":"s"}]`, `[{"x":-0.1E+2}]`, `[{"x":- 1}]`, `[{"x":tru}]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		got, ok := readBatch([]byte(data))
		var want []crmpulse.Event
		err := json.Unmarshal([]byte(data), &want)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("readBatch took %q, which json.Unmarshal refuses: %v", data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("readBatch(%q):\n got %#v\nwant %#v", data, got, want)
		}
	})
}

func TestReadBatchTakesAppendBatch(t *testing.T) {
	events := benchBatch()
	got, ok := readBatch(AppendBatch(nil, events))
	if !ok {
		t.Fatal("readBatch left AppendBatch's output to json.Unmarshal")
	}
	if len(got) != len(events) || got[0].Record != events[0].Record || !got[0].At.Equal(events[0].At) {
		t.Errorf("readBatch read %d events, first %+v", len(got), got[0])
	}
}

// benchBatch is a batch of 1,000 events as HubSpot's decoder makes them.
func benchBatch() []crmpulse.Event {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	events := make([]crmpulse.Event, 1000)
	for i := range events {
		events[i] = crmpulse.Event{ID: fmt.Sprintf("880001:%d:%d:1767225600000", 3_100_000_000+i, 51_000_000_000+i),
			Tenant: "7700001", Source: "hubspot", User: strconv.Itoa(2_000_000 + i%300), Entity: "contact",
			Record: strconv.Itoa(51_000_000_000 + i), Action: crmpulse.Updated, Fields: []string{"phone"},
			At: at, Received: at.Add(time.Duration(i) * time.Millisecond), Origin: "CRM_UI"}
	}
	return events
}

// BenchmarkOpenBatch reads a batch of 1,000 events, as the log's consumer
// does for every message.
func BenchmarkOpenBatch(b *testing.B) {
	data := AppendBatch(nil, benchBatch())
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := OpenBatch(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/event")
}
