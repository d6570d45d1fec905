package pipedrive

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest"
	"github.com/crmpulse/crmpulse/ingest/ingesttest"
)

var (
	now = ingesttest.Now
	cfg = Config{User: "pd-hook", Password: "s3cret-example"}
)

func request(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/v1/hooks/pipedrive", strings.NewReader(string(body)))
	r.Header.Set("Authorization", "Basic cGQtaG9vazpzM2NyZXQtZXhhbXBsZQ==") // SOURCES.md §6.3
	return r
}

func decode(t *testing.T, body string) *ingest.Delivery {
	t.Helper()
	d, err := New(cfg).Decode(request([]byte(body)), []byte(body), now)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestGolden(t *testing.T) {
	body := ingesttest.Payload(t, "testdata/deal-create.json")
	d, err := New(cfg).Decode(request(body), body, now)
	if err != nil {
		t.Fatal(err)
	}
	ingesttest.Golden(t, "testdata/deal-create.golden.json", d.Events)
}

func TestPayloads(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		want   crmpulse.Event
		fields []string
	}{
		{"v2 person change", `{"data":{"id":6101,"name":"Ana Ruiz","phone":"2"},"previous":{"phone":"1","email":null},` +
			`"meta":{"action":"change","entity":"person","entity_id":"6101","id":"e-1","company_id":"9","user_id":"3",` +
			`"timestamp":"2026-01-01T01:00:00+01:00","version":"2.0"}}`,
			crmpulse.Event{ID: "e-1", Tenant: "9", User: "3", Entity: "contact", Record: "6101", RecordName: "Ana Ruiz",
				Action: crmpulse.Updated, At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, []string{"email", "phone"}},
		{"v2 organization delete after merge, seconds", `{"data":null,"previous":{"id":7101,"name":"Old Org"},` +
			`"meta":{"action":"delete","entity":"organization","entity_id":"7101","id":"e-2","company_id":"9","user_id":"3",` +
			`"timestamp":1767225600,"merged_to_id":"7102","version":"2.0"}}`,
			crmpulse.Event{ID: "e-2", Tenant: "9", User: "3", Entity: "account", Record: "7101",
				Action: crmpulse.Deleted, At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, nil},
		{"v2 lead create, millisecond string", `{"data":{"id":"adf21080-0e10-11eb-879b-05d71fb426ec","title":"Lead A"},"previous":null,` +
			`"meta":{"action":"create","entity":"lead","entity_id":"adf21080-0e10-11eb-879b-05d71fb426ec","id":"e-3",` +
			`"company_id":"9","user_id":"3","timestamp":"1767225600250","version":"2.0"}}`,
			crmpulse.Event{ID: "e-3", Tenant: "9", User: "3", Entity: "lead", Record: "adf21080-0e10-11eb-879b-05d71fb426ec",
				RecordName: "Lead A", Action: crmpulse.Created, At: time.Date(2026, 1, 1, 0, 0, 0, 250e6, time.UTC)}, nil},
		{"v1 deal updated", `{"v":1,"event":"updated.deal","current":{"id":8101,"title":"Deal","value":10,"stage_id":3},` +
			`"previous":{"id":8101,"title":"Deal","value":5,"stage_id":2},"retry":0,"meta":{"v":1,"action":"updated",` +
			`"object":"deal","id":8101,"company_id":9100001,"user_id":3000001,"timestamp":1767225600,"timestamp_micro":1767225600123456}}`,
			crmpulse.Event{Tenant: "9100001", User: "3000001", Entity: "opportunity", Record: "8101", RecordName: "Deal",
				Action: crmpulse.Updated, At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, []string{"stage_id", "value"}},
		{"v1 deal added", `{"current":{"id":8102,"title":"New"},"previous":null,"meta":{"action":"added","object":"deal",` +
			`"id":8102,"company_id":9100001,"user_id":3000001,"timestamp":1767225600}}`,
			crmpulse.Event{Tenant: "9100001", User: "3000001", Entity: "opportunity", Record: "8102", RecordName: "New",
				Action: crmpulse.Created, At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, nil},
		{"v1 person merged", `{"current":{"id":6102,"name":"Kept"},"previous":{"id":6102,"name":"Kept"},"meta":{"action":"merged",` +
			`"object":"person","id":6102,"company_id":1,"user_id":2,"timestamp":1767225600}}`,
			crmpulse.Event{Tenant: "1", User: "2", Entity: "contact", Record: "6102", RecordName: "Kept",
				Action: crmpulse.Updated, At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, nil},
		{"v2 activity", `{"data":{"id":1},"meta":{"action":"create","entity":"activity","entity_id":"1","id":"e-4",` +
			`"company_id":"9","user_id":"3","timestamp":"2026-01-01T00:00:00Z"}}`,
			crmpulse.Event{ID: "e-4", Tenant: "9", User: "3", Entity: "activity", Record: "1",
				Action: crmpulse.Created, At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decode(t, tt.body)
			if len(d.Events) != 1 {
				t.Fatalf("got %d events", len(d.Events))
			}
			got := d.Events[0]
			fields := slices.Sorted(slices.Values(got.Fields))
			got.Fields, got.Source, tt.want.Source = nil, "", ""
			if !got.At.Equal(tt.want.At) || !slices.Equal(fields, tt.fields) {
				t.Errorf("at %s fields %v, want %s %v", got.At, fields, tt.want.At, tt.fields)
			}
			got.At, tt.want.At = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	body := ingesttest.Payload(t, "testdata/deal-create.json")
	tests := []struct {
		name   string
		cfg    Config
		auth   string
		body   string
		status int
	}{
		{"wrong password", cfg, "Basic cGQtaG9vazp3cm9uZw==", "", 401},
		{"no auth", cfg, "", "", 401},
		{"not configured", Config{}, "", "", 401},
		{"not JSON", cfg, "Basic cGQtaG9vazpzM2NyZXQtZXhhbXBsZQ==", "{", 400},
		{"bad timestamp", cfg, "Basic cGQtaG9vazpzM2NyZXQtZXhhbXBsZQ==", `{"meta":{"action":"create","entity":"deal","entity_id":"1","timestamp":"soon"}}`, 400},
		{"no record", cfg, "Basic cGQtaG9vazpzM2NyZXQtZXhhbXBsZQ==", `{"meta":{"action":"create","entity":"deal","timestamp":1767225600}}`, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := body
			if tt.body != "" {
				b = []byte(tt.body)
			}
			r := request(b)
			r.Header.Set("Authorization", tt.auth)
			_, err := New(tt.cfg).Decode(r, b, now)
			if got := ingesttest.Status(err); got != tt.status {
				t.Errorf("status %d (%v), want %d", got, err, tt.status)
			}
		})
	}
}

func TestIgnored(t *testing.T) {
	d := decode(t, `{"meta":{"action":"archive","entity":"deal"}}`)
	if len(d.Events) != 0 || d.Ignored["archive"] != 1 {
		t.Errorf("events %v ignored %v", d.Events, d.Ignored)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(ingesttest.Payload(f, "testdata/deal-create.json"))
	f.Add([]byte(`{"current":{"id":1,"title":"a"},"previous":{"id":1,"title":"b"},"meta":{"action":"updated","object":"deal","id":1,"timestamp":1767225600}}`))
	h := New(cfg)
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := h.Decode(request(body), body, now)
		ingesttest.Sound(t, d, err, now)
	})
}
