package zoho

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest"
	"github.com/crmpulse/crmpulse/ingest/ingesttest"
)

const token = "TOKEN_FOR_VERIFICATION_OF_1000000068001"

var now = ingesttest.Now

func decode(t *testing.T, cfg Config, body []byte) (*ingest.Delivery, error) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/v1/hooks/zoho", strings.NewReader(string(body)))
	return New(cfg).Decode(r, body, now)
}

func TestGolden(t *testing.T) {
	d, err := decode(t, Config{Token: token}, ingesttest.Payload(t, "testdata/leads-update.json"))
	if err != nil {
		t.Fatal(err)
	}
	ingesttest.Golden(t, "testdata/leads-update.golden.json", d.Events)
}

// callbackBody is an invented callback; ids are raw JSON values.
func callbackBody(module, operation, ids, values string) []byte {
	return fmt.Appendf(nil, `{"server_time":1767225600000,"module":%q,"ids":[%s],"operation":%q,`+
		`"affected_fields":[{"6756839000009999991":["Stage"]}],"affected_values":[%s],"channel_id":"1","token":%q}`,
		module, ids, operation, values, token)
}

func TestFanOut(t *testing.T) {
	values := `{"record_id":"6756839000009999991","values":{"Created_By":{"id":"6756839000000400002","name":"Creator"},` +
		`"Modified_By":{"id":6756839000000400003,"name":"Editor"}}}`
	tests := []struct {
		name    string
		body    []byte
		action  crmpulse.Action
		entity  string
		records []string
		users   []string
		fields  []string
	}{
		{"insert takes Created_By", callbackBody("Deals", "insert", `"6756839000009999991","6756839000009999992"`, values),
			crmpulse.Created, "opportunity", []string{"6756839000009999991", "6756839000009999992"},
			[]string{"6756839000000400002", ""}, nil},
		{"update takes Modified_By, numeric ids stay exact", callbackBody("Accounts", "update", `6756839000009999991`, values),
			crmpulse.Updated, "account", []string{"6756839000009999991"}, []string{"6756839000000400003"}, []string{"Stage"}},
		{"delete", callbackBody("Contacts", "delete", `"9007199254740993"`, ""),
			crmpulse.Deleted, "contact", []string{"9007199254740993"}, []string{""}, nil},
		{"other module", callbackBody("Tasks", "insert", `"1"`, ""),
			crmpulse.Created, "tasks", []string{"1"}, []string{""}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := decode(t, Config{Token: token}, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			var records, users []string
			for _, e := range d.Events {
				records, users = append(records, e.Record), append(users, e.User)
				if e.Action != tt.action || e.Entity != tt.entity || e.Tenant != "default" {
					t.Errorf("got %+v", e)
				}
			}
			if !slices.Equal(records, tt.records) || !slices.Equal(users, tt.users) ||
				!slices.Equal(d.Events[0].Fields, tt.fields) {
				t.Errorf("records %v users %v fields %v", records, users, d.Events[0].Fields)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	good := ingesttest.Payload(t, "testdata/leads-update.json")
	tests := []struct {
		name   string
		cfg    Config
		body   []byte
		status int
	}{
		{"wrong token", Config{Token: "other"}, good, 401},
		{"no token configured", Config{}, good, 401},
		{"null token", Config{Token: token}, []byte(strings.Replace(string(good), `"`+token+`"`, "null", 1)), 401},
		{"not JSON", Config{Token: token}, []byte("{"), 400},
		{"bad server_time", Config{Token: token}, []byte(strings.Replace(string(good), "1767225600250", `"x"`, 1)), 400},
		{"float id", Config{Token: token}, []byte(strings.Replace(string(good), `"ids": ["6756839000001234567"]`, `"ids": [{}]`, 1)), 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decode(t, tt.cfg, tt.body)
			if got := ingesttest.Status(err); got != tt.status {
				t.Errorf("status %d (%v), want %d", got, err, tt.status)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(ingesttest.Payload(f, "testdata/leads-update.json"))
	f.Add(callbackBody("Deals", "insert", `"1",2`, ""))
	h := New(Config{Token: token})
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/v1/hooks/zoho", strings.NewReader(string(body)))
		d, err := h.Decode(r, body, now)
		ingesttest.Sound(t, d, err, now)
	})
}
