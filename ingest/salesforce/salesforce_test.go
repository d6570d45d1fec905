package salesforce

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest"
	"github.com/crmpulse/crmpulse/ingest/ingesttest"
)

const (
	secret = "relay-secret-example"
	orgID  = "00D7R0000000OrgUAE"
)

var now = ingesttest.Now

// signed is a relay's POST of body with its HMAC.
func signed(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/v1/hooks/salesforce", strings.NewReader(string(body)))
	r.Header.Set(SignatureHeader, ingest.SignHMACSHA256(secret, body))
	return r
}

func decode(t *testing.T, body []byte) *ingest.Delivery {
	t.Helper()
	d, err := New(Config{Secret: secret, OrgID: orgID}).Decode(signed(body), body, now)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestGolden(t *testing.T) {
	for _, name := range []string{"opportunity-update", "account-create", "lead-merged-update",
		"gap-update", "gap-overflow", "pubsub-update"} {
		t.Run(name, func(t *testing.T) {
			d := decode(t, ingesttest.Payload(t, "testdata/"+name+".json"))
			ingesttest.Golden(t, "testdata/"+name+".golden.json", d.Events)
		})
	}
	t.Run("outbound-lead", func(t *testing.T) {
		body := ingesttest.Payload(t, "testdata/outbound-lead.xml")
		r := httptest.NewRequest(http.MethodPost, "/v1/hooks/salesforce-outbound", strings.NewReader(string(body)))
		d, err := NewOutbound(OutboundConfig{OrgID: orgID}).Decode(r, body, now)
		if err != nil {
			t.Fatal(err)
		}
		ingesttest.Golden(t, "testdata/outbound-lead.golden.json", d.Events)
		if got, want := string(d.Body), string(ingesttest.Payload(t, "testdata/outbound-ack.xml")); got != want {
			t.Errorf("ack = %s, want %s", got, want)
		}
		if d.Status != 200 || !strings.HasPrefix(d.ContentType, "text/xml") {
			t.Errorf("status %d content type %q", d.Status, d.ContentType)
		}
	})
}

func TestGapOverflow(t *testing.T) {
	for _, ids := range []string{`"recordIds":[],`, `"recordIds":null,`, ``} {
		t.Run(ids, func(t *testing.T) {
			body := fmt.Sprintf(`{"ChangeEventHeader":{"entityName":"Contact",%s"changeType":"GAP_OVERFLOW",`+
				`"commitTimestamp":1767225609000,"commitUser":"0057R00000UsrB2QAJ"}}`, ids)
			d := decode(t, []byte(body))
			if len(d.Events) != 0 || d.Gaps["contact"] != 1 {
				t.Errorf("events %v gaps %v, want none and one contact gap", d.Events, d.Gaps)
			}
		})
	}
}

func TestChangeTypes(t *testing.T) {
	tests := []struct {
		changeType, ids string
		want            crmpulse.Action // "" means no event
		fields          int
		ignored         string
	}{
		{"CREATE", `["001000000000001"]`, crmpulse.Created, 0, ""},
		{"UPDATE", `["001000000000001"]`, crmpulse.Updated, 1, ""},
		{"DELETE", `["001000000000001"]`, crmpulse.Deleted, 0, ""},
		{"UNDELETE", `["001000000000001"]`, crmpulse.Restored, 0, ""},
		{"GAP_CREATE", `["001000000000001"]`, crmpulse.Created, 0, ""},
		{"GAP_DELETE", `["001000000000001"]`, crmpulse.Deleted, 0, ""},
		{"GAP_UNDELETE", `["001000000000001"]`, crmpulse.Restored, 0, ""},
		{"SNAPSHOT", `["001000000000001"]`, "", 0, "SNAPSHOT"},
		{"UPDATE", `["001*"]`, "", 0, "wildcard recordIds"},
	}
	for _, tt := range tests {
		t.Run(tt.changeType+tt.ids, func(t *testing.T) {
			body := fmt.Sprintf(`{"channel":"/data/ChangeEvents","data":{"payload":{"ChangeEventHeader":`+
				`{"entityName":"MyObject__c","recordIds":%s,"changeType":%q,"commitTimestamp":1767225600000,`+
				`"commitUser":"005000000000001","changedFields":["Amount__c"]}}}}`, tt.ids, tt.changeType)
			d := decode(t, []byte(body))
			if tt.want == "" {
				if len(d.Events) != 0 || d.Ignored[tt.ignored] != 1 {
					t.Fatalf("events %v ignored %v, want none and %q", d.Events, d.Ignored, tt.ignored)
				}
				return
			}
			if len(d.Events) != 1 {
				t.Fatalf("got %d events", len(d.Events))
			}
			e := d.Events[0]
			if e.Action != tt.want || len(e.Fields) != tt.fields || e.Entity != "myobject__c" ||
				e.Record != "001000000000001AAA" || e.User != "005000000000001AAA" {
				t.Errorf("got %+v", e)
			}
		})
	}
}

func TestID18(t *testing.T) {
	tests := []struct{ in, want string }{
		{"001ZM000001n4n5", "001ZM000001n4n5YAA"},
		{"005ZM000000Q6ip", "005ZM000000Q6ipYAC"},
		{"0055f000005mc66", "0055f000005mc66AAA"},
		{"0067R00000Fake2", "0067R00000Fake2QAB"},
		{"0067R00000Fake2QAB", "0067R00000Fake2QAB"},
		{"short", "short"},
		{"001-not-an-id!!", "001-not-an-id!!"},
	}
	for _, tt := range tests {
		if got := ID18(tt.in); got != tt.want {
			t.Errorf("ID18(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRecordName(t *testing.T) {
	tests := []struct{ payload, want string }{
		{`"Name":"Acme","FirstName":"A"`, "Acme"},
		{`"Name":{"FirstName":"Ana","LastName":"Ruiz"}`, "Ana Ruiz"},
		{`"FirstName":"Ana","LastName":"Ruiz"`, "Ana Ruiz"},
		{`"Name":null`, ""},
	}
	for _, tt := range tests {
		body := `{"ChangeEventHeader":{"entityName":"Contact","recordIds":["0037R00000Fake1QAB"],` +
			`"changeType":"CREATE","commitTimestamp":1767225600000,"commitUser":"0057R00000UsrA1QAJ"},` + tt.payload + `}`
		if got := decode(t, []byte(body)).Events[0].RecordName; got != tt.want {
			t.Errorf("%s: name %q, want %q", tt.payload, got, tt.want)
		}
	}
}

func TestRefused(t *testing.T) {
	body := ingesttest.Payload(t, "testdata/account-create.json")
	tests := []struct {
		name   string
		cfg    Config
		sig    string
		body   string
		status int
	}{
		{"no signature", Config{Secret: secret}, "", "", 401},
		{"wrong signature", Config{Secret: secret}, ingest.SignHMACSHA256("other", body), "", 401},
		{"no secret configured", Config{}, ingest.SignHMACSHA256("", body), "", 401},
		{"not JSON", Config{Secret: secret}, "", "{", 400},
		{"no header", Config{Secret: secret}, "", `{"data":{"payload":{}}}`, 400},
		{"bad timestamp", Config{Secret: secret}, "", `{"ChangeEventHeader":{"changeType":"CREATE","recordIds":["x"],"commitTimestamp":"x"}}`, 400},
		{"no entity", Config{Secret: secret}, "", `{"ChangeEventHeader":{"changeType":"CREATE","recordIds":["x"],"commitTimestamp":1}}`, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := body
			if tt.body != "" {
				b = []byte(tt.body)
			}
			r := signed(b)
			if tt.sig != "" || tt.body == "" {
				r.Header.Set(SignatureHeader, tt.sig)
			}
			_, err := New(tt.cfg).Decode(r, b, now)
			if got := ingesttest.Status(err); got != tt.status {
				t.Errorf("status %d (%v), want %d", got, err, tt.status)
			}
		})
	}
}

func TestArrayOfMessages(t *testing.T) {
	a := ingesttest.Payload(t, "testdata/gap-update.json")
	b := ingesttest.Payload(t, "testdata/gap-overflow.json")
	d := decode(t, []byte("["+string(a)+","+string(b)+"]"))
	if len(d.Events) != 1 || d.Gaps["contact"] != 1 {
		t.Errorf("events %v gaps %v", d.Events, d.Gaps)
	}
}

func TestDefaultTenant(t *testing.T) {
	body := ingesttest.Payload(t, "testdata/account-create.json")
	d, err := DecodeChangeEvent(body, "", now)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Events[0].Tenant; got != "default" {
		t.Errorf("tenant %q, want default", got)
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"opportunity-update", "account-create", "lead-merged-update",
		"gap-update", "gap-overflow", "pubsub-update"} {
		f.Add(ingesttest.Payload(f, "testdata/"+name+".json"))
	}
	f.Add(ingesttest.Payload(f, "testdata/outbound-lead.xml"))
	h := New(Config{Secret: secret, OrgID: orgID})
	o := NewOutbound(OutboundConfig{OrgID: orgID})
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := h.Decode(signed(body), body, now)
		ingesttest.Sound(t, d, err, now)
		d, err = o.Decode(signed(body), body, now)
		ingesttest.Sound(t, d, err, now)
	})
}
