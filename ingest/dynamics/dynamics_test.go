package dynamics

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest/ingesttest"
)

const key = "EXAMPLE-KEY-123"

var now = ingesttest.Now

func request(target string, body []byte) *http.Request {
	return httptest.NewRequest(http.MethodPost, target, strings.NewReader(string(body)))
}

func TestGolden(t *testing.T) {
	body := ingesttest.Payload(t, "testdata/lead-create.json")
	d, err := New(Config{Key: key}).Decode(request("/v1/hooks/dynamics?code="+key, body), body, now)
	if err != nil {
		t.Fatal(err)
	}
	ingesttest.Golden(t, "testdata/lead-create.golden.json", d.Events)
}

// execution is an invented RemoteExecutionContext.
func execution(message, stage, target string) []byte {
	return fmt.Appendf(nil, `{"MessageName":%q,"Stage":%s,"PrimaryEntityName":"account",`+
		`"PrimaryEntityId":"BBBBBBBB-0000-4000-8000-000000000101","InitiatingUserId":"AAAAAAAA-0000-4000-8000-000000000001",`+
		`"UserId":"aaaaaaaa-0000-4000-8000-000000000002","OrganizationId":"DDDDDDDD-0000-4000-8000-000000000301",`+
		`"OperationCreatedOn":"\/Date(1506409448000-0700)\/","InputParameters":[{"key":"Target","value":%s}]}`,
		message, stage, target)
}

const update = `{"Attributes":[{"key":"name","value":"Acme"},{"key":"telephone1","value":"1"},{"key":"modifiedon","value":"\/Date(1506409448000)\/"}],"Id":"bbbbbbbb-0000-4000-8000-000000000101"}`

const reference = `{"Id":"bbbbbbbb-0000-4000-8000-000000000101","LogicalName":"account"}`

func TestMessages(t *testing.T) {
	tests := []struct {
		name    string
		body    []byte
		action  crmpulse.Action // "" means no event
		fields  []string
		record  string
		ignored string
	}{
		{"update", execution("Update", "40", update), crmpulse.Updated, []string{"name", "telephone1", "modifiedon"}, "Acme", ""},
		{"assign", execution("Assign", "40", reference), crmpulse.Updated, []string{"ownerid"}, "", ""},
		{"set state", execution("SetState", "40", reference), crmpulse.Updated, []string{"statecode", "statuscode"}, "", ""},
		{"set state dynamic", execution("SetStateDynamicEntity", "40", reference), crmpulse.Updated, []string{"statecode", "statuscode"}, "", ""},
		{"merge", execution("Merge", "40", reference), crmpulse.Updated, nil, "", ""},
		{"delete", execution("Delete", "40", reference), crmpulse.Deleted, nil, "", ""},
		{"pre-validation", execution("Create", "10", update), "", nil, "", "Create before commit"},
		{"pre-operation", execution("Update", "20", update), "", nil, "", "Update before commit"},
		{"other message", execution("RetrieveMultiple", "40", reference), "", nil, "", "RetrieveMultiple"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New(Config{Key: key}).Decode(request("/h?code="+key, tt.body), tt.body, now)
			if err != nil {
				t.Fatal(err)
			}
			if tt.action == "" {
				if len(d.Events) != 0 || d.Ignored[tt.ignored] != 1 {
					t.Fatalf("events %v ignored %v", d.Events, d.Ignored)
				}
				return
			}
			e := d.Events[0]
			if e.Action != tt.action || !slices.Equal(e.Fields, tt.fields) || e.RecordName != tt.record {
				t.Errorf("got %+v", e)
			}
			want := time.Date(2017, 9, 26, 7, 4, 8, 0, time.UTC)
			if !e.At.Equal(want) || e.User != "aaaaaaaa-0000-4000-8000-000000000001" ||
				e.Record != "bbbbbbbb-0000-4000-8000-000000000101" || e.Tenant != "dddddddd-0000-4000-8000-000000000301" {
				t.Errorf("at %s user %s record %s tenant %s", e.At, e.User, e.Record, e.Tenant)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	good := execution("Create", "40", update)
	tests := []struct {
		name   string
		cfg    Config
		target string
		header string
		body   []byte
		status int
	}{
		{"key in header", Config{Key: key, Header: "X-Api-Key"}, "/h", key, good, 0},
		{"code ignored when a header is configured", Config{Key: key, Header: "X-Api-Key"}, "/h?code=" + key, "", good, 401},
		{"wrong code", Config{Key: key}, "/h?code=nope", "", good, 401},
		{"no code", Config{Key: key}, "/h", "", good, 401},
		{"no key configured", Config{}, "/h?code=", "", good, 401},
		{"not JSON", Config{Key: key}, "/h?code=" + key, "", []byte("{"), 400},
		{"bad date", Config{Key: key}, "/h?code=" + key, "",
			[]byte(strings.Replace(string(good), `\/Date(1506409448000-0700)\/`, `2017-09-26`, 1)), 400},
		{"no record", Config{Key: key}, "/h?code=" + key, "",
			[]byte(`{"MessageName":"Create","Stage":40,"PrimaryEntityName":"lead","OperationCreatedOn":"/Date(1)/"}`), 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := request(tt.target, tt.body)
			r.Header.Set("X-Api-Key", tt.header)
			_, err := New(tt.cfg).Decode(r, tt.body, now)
			if got := ingesttest.Status(err); got != tt.status {
				t.Errorf("status %d (%v), want %d", got, err, tt.status)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(ingesttest.Payload(f, "testdata/lead-create.json"))
	f.Add(execution("Update", "40", update))
	h := New(Config{Key: key})
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := h.Decode(request("/h?code="+key, body), body, now)
		ingesttest.Sound(t, d, err, now)
	})
}
