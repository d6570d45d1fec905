package businesscentral

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/crmpulse/crmpulse/ingest"
	"github.com/crmpulse/crmpulse/ingest/ingesttest"
)

const clientState = "cs-4f1c2a9e-example"

var now = ingesttest.Now

func decode(t *testing.T, cfg Config, target string, body []byte) (*ingest.Delivery, error) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(string(body)))
	return New(cfg).Decode(r, body, now)
}

func TestGolden(t *testing.T) {
	body := ingesttest.Payload(t, "testdata/notification.json")
	d, err := decode(t, Config{ClientState: clientState}, "/v1/hooks/businesscentral", body)
	if err != nil {
		t.Fatal(err)
	}
	ingesttest.Golden(t, "testdata/notification.golden.json", d.Events)
	if len(d.DeadLetters) != 1 || !strings.Contains(d.DeadLetters[0].Reason, "collection") {
		t.Errorf("dead letters %+v, want the collection", d.DeadLetters)
	}

	d, err = decode(t, Config{ClientState: clientState, Entities: map[string]string{"customers": "account"}},
		"/v1/hooks/businesscentral", body)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range d.Events {
		if e.Entity != "account" {
			t.Errorf("entity %q with customers mapped to account", e.Entity)
		}
	}
}

func TestHandshake(t *testing.T) {
	for _, body := range []string{"", `{"value":[]}`} {
		d, err := decode(t, Config{ClientState: clientState}, "/v1/hooks/businesscentral?validationToken=Zx9%2Bq7%2FAbC%3D%3D", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != 200 || !strings.HasPrefix(d.ContentType, "text/plain") || string(d.Body) != "Zx9+q7/AbC==" || len(d.Events) != 0 {
			t.Errorf("answer %d %q %q", d.Status, d.ContentType, d.Body)
		}
	}
}

func item(state, resource, changeType string) string {
	return fmt.Sprintf(`{"subscriptionId":"s","clientState":%q,"resource":%q,"changeType":%q,`+
		`"lastModifiedDateTime":"2026-01-01T01:00:00+01:00"}`, state, resource, changeType)
}

const company = "api/v2.0/companies(5F0A3C1E-0000-4000-8000-00000000A001)/"

func TestNotifications(t *testing.T) {
	tests := []struct {
		name        string
		items       []string
		status      int
		entities    []string
		deadLetters int
	}{
		{"updated item", []string{item(clientState, company+"items(1f0a3c1e-0000-4000-8000-00000000c103)", "updated")}, 0, []string{"item"}, 0},
		{"G/L account", []string{item(clientState, company+"accounts(1f0a3c1e-0000-4000-8000-00000000c104)", "created")}, 0, []string{"gl_account"}, 0},
		{"sales order", []string{item(clientState, "/"+company+"salesOrders(1f0a3c1e-0000-4000-8000-00000000c105)", "deleted")}, 0, []string{"sales_order"}, 0},
		{"collection", []string{item(clientState, company+"customers?$filter=x", "collection")}, 0, nil, 1},
		{"unknown change type", []string{item(clientState, company+"customers(1)", "renamed")}, 0, nil, 1},
		{"no record id", []string{item(clientState, company+"customers", "created")}, 0, nil, 1},
		{"undecodable item beside a good one", []string{`42`, item(clientState, company+"vendors(2)", "created")}, 0, []string{"vendor"}, 1},
		{"bad time", []string{strings.Replace(item(clientState, company+"customers(1)", "created"), "2026-01-01T01:00:00+01:00", "yesterday", 1)}, 0, nil, 1},
		{"future time", []string{strings.Replace(item(clientState, company+"customers(1)", "created"), "2026-01-01T01:00:00+01:00", "2027-01-01T00:00:00Z", 1)}, 0, nil, 1},
		{"wrong clientState", []string{item("guess", company+"customers(1)", "created")}, 401, nil, 0},
		{"one wrong clientState", []string{item(clientState, company+"customers(1)", "created"), item("guess", company+"customers(2)", "created")}, 401, nil, 0},
		{"no clientState at all", []string{`{"resource":"x"}`}, 401, nil, 0},
		{"empty", nil, 0, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(`{"value":[` + strings.Join(tt.items, ",") + `]}`)
			d, err := decode(t, Config{ClientState: clientState}, "/h", body)
			if got := ingesttest.Status(err); got != tt.status {
				t.Fatalf("status %d (%v), want %d", got, err, tt.status)
			}
			if err != nil {
				return
			}
			var entities []string
			for _, e := range d.Events {
				entities = append(entities, e.Entity)
				if e.Tenant != "5f0a3c1e-0000-4000-8000-00000000a001" || e.User != "" {
					t.Errorf("tenant %q user %q", e.Tenant, e.User)
				}
			}
			if fmt.Sprint(entities) != fmt.Sprint(tt.entities) || len(d.DeadLetters) != tt.deadLetters {
				t.Errorf("entities %v dead letters %+v", entities, d.DeadLetters)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	for _, tt := range []struct {
		name   string
		cfg    Config
		body   string
		status int
	}{
		{"no clientState configured", Config{}, `{"value":[` + item("", company+"customers(1)", "created") + `]}`, 401},
		{"not JSON", Config{ClientState: clientState}, `{"value":`, 400},
		{"empty body without a token", Config{ClientState: clientState}, ``, 400},
	} {
		_, err := decode(t, tt.cfg, "/h", []byte(tt.body))
		if got := ingesttest.Status(err); got != tt.status {
			t.Errorf("%s: status %d (%v), want %d", tt.name, got, err, tt.status)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(ingesttest.Payload(f, "testdata/notification.json"))
	f.Add([]byte(`{"value":[42,` + item(clientState, company+"salesOrders(1)", "updated") + `]}`))
	h := New(Config{ClientState: clientState})
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/h", strings.NewReader(string(body)))
		d, err := h.Decode(r, body, now)
		ingesttest.Sound(t, d, err, now)
	})
}
