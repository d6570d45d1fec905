package debezium

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest/ingesttest"
)

const topic = "crm.public.leads"

var now = ingesttest.Now

// leads is the mapping SOURCES-EXPECTED §1.3 assumes for the fixtures.
var leads = Config{Tables: map[string]Table{"public.leads": {
	Entity: "lead", Name: "full_name",
	CreatedBy: "created_by", UpdatedBy: "updated_by",
	CreatedAt: "created_at", UpdatedAt: "updated_at", TimeUnit: "us",
}}}

// record splits a fixture {"key": ..., "value": ...} into Kafka key and
// value bytes.
func record(t testing.TB, data []byte) (key, value []byte) {
	t.Helper()
	var r struct{ Key, Value json.RawMessage }
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r.Key, r.Value
}

func TestGolden(t *testing.T) {
	for _, name := range []string{"lead-create", "lead-delete", "lead-tombstone"} {
		t.Run(name, func(t *testing.T) {
			key, value := record(t, ingesttest.Payload(t, "testdata/"+name+".json"))
			e, err := New(leads).Decode(topic, key, value, now)
			if err != nil {
				t.Fatal(err)
			}
			var events []crmpulse.Event
			if e != nil {
				events = append(events, *e)
			}
			ingesttest.Golden(t, "testdata/"+name+".golden.json", events)
		})
	}
}

// change is an invented change in public.leads.
func change(op, before, after string) []byte {
	return fmt.Appendf(nil, `{"before":%s,"after":%s,"source":{"name":"crm","schema":"public","table":"leads",`+
		`"ts_ms":1767225600123,"ts_us":1767225600123456,"snapshot":"false"},"op":%q,"ts_ms":1767225609999}`, before, after, op)
}

func TestOps(t *testing.T) {
	row := `{"id":42,"full_name":"Ana","status":"new","created_by":"u-1","updated_by":"u-2","created_at":1767225500000000,"updated_at":1767225550000000}`
	changedRow := `{"id":42,"full_name":"Ana","status":"won","created_by":"u-1","updated_by":"u-2","created_at":1767225500000000,"updated_at":1767225550000000}`
	tests := []struct {
		name   string
		key    string
		value  []byte
		want   *crmpulse.Event
		fields []string
	}{
		{"update with before", `{"id":42}`, change("u", row, changedRow),
			&crmpulse.Event{Tenant: "crm", Source: Source, User: "u-2", Entity: "lead", Record: "42", RecordName: "Ana",
				Action: crmpulse.Updated, At: time.UnixMicro(1767225550000000)}, []string{"status"}},
		{"update without before", `{"id":42}`, change("u", "null", changedRow),
			&crmpulse.Event{Tenant: "crm", Source: Source, User: "u-2", Entity: "lead", Record: "42", RecordName: "Ana",
				Action: crmpulse.Updated, At: time.UnixMicro(1767225550000000)}, nil},
		{"create with a null time column", `{"id":"L-7"}`, change("c", "null", `{"id":"L-7","created_by":"u-1","created_at":null}`),
			&crmpulse.Event{Tenant: "crm", Source: Source, User: "u-1", Entity: "lead", Record: "L-7",
				Action: crmpulse.Created, At: time.UnixMicro(1767225600123456)}, nil},
		{"delete is unattributed", `{"id":42}`, change("d", `{"id":42}`, "null"),
			&crmpulse.Event{Tenant: "crm", Source: Source, Entity: "lead", Record: "42",
				Action: crmpulse.Deleted, At: time.UnixMicro(1767225600123456)}, nil},
		{"schemas enabled", `{"schema":{"type":"struct"},"payload":{"id":42}}`,
			fmt.Appendf(nil, `{"schema":{"type":"struct"},"payload":%s}`, change("d", `{"id":42}`, "null")),
			&crmpulse.Event{Tenant: "crm", Source: Source, Entity: "lead", Record: "42",
				Action: crmpulse.Deleted, At: time.UnixMicro(1767225600123456)}, nil},
		{"snapshot read", `{"id":42}`, change("r", "null", row), nil, nil},
		{"truncate", `null`, change("t", "null", "null"), nil, nil},
		{"message", `null`, change("m", "null", "null"), nil, nil},
		{"tombstone", `{"id":42}`, nil, nil, nil},
		{"tombstone null", `{"id":42}`, []byte("null"), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := New(leads).Decode(topic, []byte(tt.key), tt.value, now)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil || got == nil {
				if got != tt.want {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
				return
			}
			fields := got.Fields
			g := *got
			g.Fields, g.At = nil, time.Time{}
			w := *tt.want
			w.At = time.Time{}
			if fmt.Sprint(g) != fmt.Sprint(w) || !got.At.Equal(tt.want.At) || !slices.Equal(fields, tt.fields) {
				t.Errorf("got  %+v %v\nwant %+v %v", *got, fields, *tt.want, tt.fields)
			}
		})
	}
}

func TestTimeUnits(t *testing.T) {
	tests := []struct {
		unit, value string
		want        time.Time
	}{
		{"ms", `1767225600123`, time.UnixMilli(1767225600123)},
		{"us", `1767225600123456`, time.UnixMicro(1767225600123456)},
		{"iso", `"2026-01-01T01:00:00.5+01:00"`, time.Date(2026, 1, 1, 0, 0, 0, 5e8, time.UTC)},
	}
	for _, tt := range tests {
		cfg := Config{Tables: map[string]Table{topic: {Entity: "lead", CreatedAt: "at", TimeUnit: tt.unit, Key: "id"}}}
		e, err := New(cfg).Decode(topic, []byte(`{"id":1}`), change("c", "null", `{"at":`+tt.value+`}`), now)
		if err != nil {
			t.Fatal(err)
		}
		if !e.At.Equal(tt.want) {
			t.Errorf("%s: at %s, want %s", tt.unit, e.At, tt.want)
		}
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name       string
		topic, key string
		value      []byte
		noTable    bool
	}{
		{"unmapped table", "crm.public.deals", `{"id":1}`,
			[]byte(`{"op":"c","after":{},"source":{"schema":"public","table":"deals","ts_ms":1}}`), true},
		{"not JSON", topic, `{"id":1}`, []byte(`{"op":`), false},
		{"no record id", topic, `null`, change("c", "null", `{"x":1}`), false},
		{"bad time", topic, `{"id":1}`, change("c", "null", `{"created_at":"soon"}`), false},
		{"future time", topic, `{"id":1}`, change("c", "null", `{"created_at":1798761600000000}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := New(leads).Decode(tt.topic, []byte(tt.key), tt.value, now)
			if err == nil || e != nil {
				t.Fatalf("got %+v, %v; want an error", e, err)
			}
			if got := errors.Is(err, ErrNoTable); got != tt.noTable {
				t.Errorf("errors.Is(%v, ErrNoTable) = %v", err, got)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"lead-create", "lead-delete", "lead-tombstone"} {
		key, value := record(f, ingesttest.Payload(f, "testdata/"+name+".json"))
		f.Add(key, value)
	}
	d := New(leads)
	f.Fuzz(func(t *testing.T, key, value []byte) {
		e, err := d.Decode(topic, key, value, now)
		if err == nil && e != nil {
			ingesttest.SoundEvents(t, []crmpulse.Event{*e}, now)
		}
	})
}
