package generic

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest"
	"github.com/crmpulse/crmpulse/ingest/ingesttest"
)

const secret = "generic-secret-example"

var (
	now     = ingesttest.Now
	mapping = Mapping{
		Items: "batch.changes", ID: "uid", Tenant: "org", User: "who.id", UserName: "who.name",
		Entity: "=opportunity", Record: "key", RecordName: "title", Action: "op", Fields: "changed", At: "when",
		Actions: map[string]crmpulse.Action{"added": crmpulse.Created, "modified": crmpulse.Updated},
	}
)

func signed(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/v1/hooks/generic", strings.NewReader(string(body)))
	r.Header.Set(SignatureHeader, ingest.SignHMACSHA256(secret, body))
	return r
}

func TestMapping(t *testing.T) {
	body := ingesttest.Payload(t, "testdata/changes.json")
	d, err := New(Config{Secret: secret, Mapping: mapping}).Decode(signed(body), body, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Events) != 2 || d.Ignored["viewed"] != 1 {
		t.Fatalf("events %+v ignored %v", d.Events, d.Ignored)
	}
	a, b := d.Events[0], d.Events[1]
	want := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if a.ID != "c-1" || a.Tenant != "acme" || a.User != "17" || a.UserName != "Ana Ruiz" || a.Entity != "opportunity" ||
		a.Record != "OPP-42" || a.RecordName != "Cancity renewal" || a.Action != crmpulse.Updated ||
		!slices.Equal(a.Fields, []string{"stage", "amount"}) || !a.At.Equal(want) || a.Source != "generic" {
		t.Errorf("first %+v", a)
	}
	if b.Action != crmpulse.Created || b.User != "18" || !b.At.Equal(want) || b.Fields != nil {
		t.Errorf("second %+v", b)
	}
}

func TestShapes(t *testing.T) {
	m := Mapping{Entity: "type", Record: "id", Action: "action", At: "at", User: "users.0", Fields: "diff", TimeUnit: "s"}
	tests := []struct {
		name, body string
		events     int
		status     int
	}{
		{"object", `{"type":"lead","id":"L1","action":"updated","at":1767225600,"users":["u1"],"diff":{"a":1,"b":2}}`, 1, 0},
		{"array", `[{"type":"lead","id":"L1","action":"deleted","at":1767225600},{"type":"lead","id":"L2","action":"restored","at":"2026-01-01T00:00:00Z"}]`, 2, 0},
		{"missing record", `{"type":"lead","action":"created","at":1767225600}`, 0, 400},
		{"bad entity", `{"type":"Lead Thing","id":"1","action":"created","at":1767225600}`, 0, 400},
		{"bad time", `{"type":"lead","id":"1","action":"created","at":true}`, 0, 400},
		{"not JSON", `{`, 0, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			d, err := New(Config{Secret: secret, Mapping: m}).Decode(signed(body), body, now)
			if got := ingesttest.Status(err); got != tt.status {
				t.Fatalf("status %d (%v), want %d", got, err, tt.status)
			}
			if err == nil && len(d.Events) != tt.events {
				t.Errorf("%d events, want %d", len(d.Events), tt.events)
			}
		})
	}
}

func TestSignature(t *testing.T) {
	body := ingesttest.Payload(t, "testdata/changes.json")
	for _, tt := range []struct {
		name, secret, sig string
	}{
		{"wrong", secret, ingest.SignHMACSHA256("other", body)},
		{"missing", secret, ""},
		{"not hex", secret, "zz"},
		{"no secret configured", "", ingest.SignHMACSHA256("", body)},
	} {
		r := signed(body)
		r.Header.Set(SignatureHeader, tt.sig)
		_, err := New(Config{Secret: tt.secret, Mapping: mapping}).Decode(r, body, now)
		if got := ingesttest.Status(err); got != 401 {
			t.Errorf("%s: status %d, want 401", tt.name, got)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(ingesttest.Payload(f, "testdata/changes.json"))
	h := New(Config{Secret: secret, Mapping: mapping})
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := h.Decode(signed(body), body, now)
		ingesttest.Sound(t, d, err, now)
	})
}
