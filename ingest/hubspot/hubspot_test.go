package hubspot

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest"
	"github.com/crmpulse/crmpulse/ingest/ingesttest"
)

// The fixture of SOURCES.md §1.5.
const (
	secret    = "0c1d2e3f-4a5b-4c6d-8e9f-a0b1c2d3e4f5"
	publicURL = "https://hooks.example.test"
	path      = "/v1/hooks/hubspot"
	timestamp = "1767225603000"
)

var now = ingesttest.Now

func newHook() *Hook { return New(Config{Secret: secret, PublicURL: publicURL}) }

// v3Request is a POST of body to target, signed with v3 at the timestamp ts.
func v3Request(t testing.TB, target, ts string, body []byte) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(string(body)))
	r.Header.Set("X-HubSpot-Request-Timestamp", ts)
	r.Header.Set("X-HubSpot-Signature-v3", SignatureV3(secret, http.MethodPost, publicURL+target, body, ts))
	return r
}

func decode(t *testing.T, body []byte) *ingest.Delivery {
	t.Helper()
	d, err := newHook().Decode(v3Request(t, path, timestamp, body), body, now)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestGolden(t *testing.T) {
	t.Run("batch v3", func(t *testing.T) {
		body := ingesttest.Payload(t, "testdata/batch.json")
		r := v3Request(t, path, timestamp, body)
		if got, want := r.Header.Get("X-HubSpot-Signature-v3"), "Lj5gYI88/gLQ1ahoEO1hJfjEtXPx+Vv0D23PyuJbIfg="; got != want {
			t.Fatalf("v3 signature = %s, want %s", got, want)
		}
		d, err := newHook().Decode(r, body, now)
		if err != nil {
			t.Fatal(err)
		}
		ingesttest.Golden(t, "testdata/batch.golden.json", d.Events)
		for i, want := range []string{"CRM_UI", "CRM_UI", "API"} {
			if got := d.Events[i].Origin; got != want {
				t.Errorf("event %d origin = %q, want %q", i, got, want)
			}
		}
	})
	t.Run("v1 vector", func(t *testing.T) {
		body := ingesttest.Payload(t, "testdata/v1-vector.json")
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(body)))
		r.Header.Set("X-HubSpot-Signature-Version", "v1")
		r.Header.Set("X-HubSpot-Signature", "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de")
		h := New(Config{Secret: "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"})
		d, err := h.Decode(r, body, now)
		if err != nil {
			t.Fatal(err)
		}
		ingesttest.Golden(t, "testdata/v1-vector.golden.json", d.Events)
	})
}

func TestSignatureVectors(t *testing.T) {
	const vectorSecret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
	vector := ingesttest.Payload(t, "testdata/v1-vector.json")
	batch := ingesttest.Payload(t, "testdata/batch.json")
	tests := []struct {
		name, got, want string
	}{
		{"v1", SignatureV1(vectorSecret, vector),
			"232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"},
		{"v2 GET", SignatureV2(vectorSecret, "GET", "https://www.example.com/webhook_uri", nil),
			"eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"},
		{"v2 POST", SignatureV2(vectorSecret, "POST", "https://www.example.com/webhook_uri",
			[]byte(`{"example_field":"example_value"}`)),
			"9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"},
		{"fixture v1", SignatureV1(secret, batch),
			"d9dec00015a2b24dd2af976fe9d8875a6128de5d4c876a26cb6a9e2134d58de1"},
		{"fixture v2", SignatureV2(secret, "POST", publicURL+path, batch),
			"0776c7ac2d3f693f764063f419f267b0a1e9452de13940b17dd1c8ce6de1bc41"},
		{"fixture v3", SignatureV3(secret, "POST", publicURL+path, batch, timestamp),
			"Lj5gYI88/gLQ1ahoEO1hJfjEtXPx+Vv0D23PyuJbIfg="},
		{"fixture v3 %3A", SignatureV3(secret, "POST", publicURL+path+"?tenant=acme%3Aeu", batch, timestamp),
			"UVKc3KrvZtHu2WLtsljm4N2Upvf/iGpnZ14MGjja5XE="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %s, want %s", tt.got, tt.want)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	body := ingesttest.Payload(t, "testdata/batch.json")
	header := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name       string
		target     string
		header     http.Header
		wantStatus int
		wantDetail string
	}{
		{"v3", path, header("X-HubSpot-Request-Timestamp", timestamp,
			"X-HubSpot-Signature-V3", "Lj5gYI88/gLQ1ahoEO1hJfjEtXPx+Vv0D23PyuJbIfg="), 0, ""},
		{"v3 query %3A decoded", path + "?tenant=acme%3Aeu", header("X-HubSpot-Request-Timestamp", timestamp,
			"X-HubSpot-Signature-v3", "UVKc3KrvZtHu2WLtsljm4N2Upvf/iGpnZ14MGjja5XE="), 0, ""},
		{"v3 wins over a bad v1", path, header("X-HubSpot-Request-Timestamp", timestamp,
			"X-HubSpot-Signature-v3", "Lj5gYI88/gLQ1ahoEO1hJfjEtXPx+Vv0D23PyuJbIfg=",
			"X-HubSpot-Signature", "00"), 0, ""},
		{"v3 wrong", path, header("X-HubSpot-Request-Timestamp", timestamp,
			"X-HubSpot-Signature-v3", "AAAAYI88/gLQ1ahoEO1hJfjEtXPx+Vv0D23PyuJbIfg="), 401, "does not match"},
		{"v3 invalid falls not back to v1", path, header("X-HubSpot-Request-Timestamp", timestamp,
			"X-HubSpot-Signature-v3", "bad", "X-HubSpot-Signature-Version", "v1",
			"X-HubSpot-Signature", "d9dec00015a2b24dd2af976fe9d8875a6128de5d4c876a26cb6a9e2134d58de1"), 401, ""},
		{"v3 timestamp as float", path, header("X-HubSpot-Request-Timestamp", timestamp+".0",
			"X-HubSpot-Signature-v3", "Lj5gYI88/gLQ1ahoEO1hJfjEtXPx+Vv0D23PyuJbIfg="), 401, ""},
		{"v3 without timestamp", path, header(
			"X-HubSpot-Signature-v3", "Lj5gYI88/gLQ1ahoEO1hJfjEtXPx+Vv0D23PyuJbIfg="), 401, "missing"},
		{"v1", path, header("X-HubSpot-Signature-Version", "v1",
			"X-HubSpot-Signature", "d9dec00015a2b24dd2af976fe9d8875a6128de5d4c876a26cb6a9e2134d58de1"), 0, ""},
		{"v1 uppercase hex", path, header("X-HubSpot-Signature-Version", "v1",
			"X-HubSpot-Signature", "D9DEC00015A2B24DD2AF976FE9D8875A6128DE5D4C876A26CB6A9E2134D58DE1"), 0, ""},
		{"v2", path, header("X-HubSpot-Signature-Version", "v2",
			"X-HubSpot-Signature", "0776c7ac2d3f693f764063f419f267b0a1e9452de13940b17dd1c8ce6de1bc41"), 0, ""},
		{"v1 signature sent as v2", path, header("X-HubSpot-Signature-Version", "v2",
			"X-HubSpot-Signature", "d9dec00015a2b24dd2af976fe9d8875a6128de5d4c876a26cb6a9e2134d58de1"), 401, ""},
		{"unknown version", path, header("X-HubSpot-Signature-Version", "v9",
			"X-HubSpot-Signature", "d9dec00015a2b24dd2af976fe9d8875a6128de5d4c876a26cb6a9e2134d58de1"), 401, "unknown"},
		{"no signature", path, header(), 401, "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, tt.target, strings.NewReader(string(body)))
			r.Header = tt.header
			_, err := newHook().Decode(r, body, now)
			if got := ingesttest.Status(err); got != tt.wantStatus {
				t.Fatalf("status = %d (%v), want %d", got, err, tt.wantStatus)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantDetail) {
				t.Errorf("error %q does not say %q", err, tt.wantDetail)
			}
		})
	}
}

func TestStaleTimestamp(t *testing.T) {
	body := ingesttest.Payload(t, "testdata/batch.json")
	tests := []struct {
		name string
		now  time.Time
		want int
	}{
		{"at the timestamp", time.UnixMilli(1767225603000), 0},
		{"five minutes after", time.UnixMilli(1767225603000).Add(5 * time.Minute), 0},
		{"just over five minutes after", time.UnixMilli(1767225603000).Add(5*time.Minute + time.Millisecond), 401},
		{"an hour before", time.UnixMilli(1767225603000).Add(-time.Hour), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newHook().Decode(v3Request(t, path, timestamp, body), body, tt.now)
			if got := ingesttest.Status(err); got != tt.want {
				t.Fatalf("status = %d (%v), want %d", got, err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), "stale") {
				t.Errorf("error %q does not say the timestamp is stale", err)
			}
		})
	}
}

func TestUnconfigured(t *testing.T) {
	body := []byte(`[]`)
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader("[]"))
	r.Header.Set("X-HubSpot-Signature", SignatureV1("", body))
	_, err := New(Config{}).Decode(r, body, now)
	if got := ingesttest.Status(err); got != 401 {
		t.Fatalf("status = %d, want 401", got)
	}
}

// item is one notification of an invented batch at 2026-01-01T00:00:00Z.
func item(typ string, extra string) string {
	return fmt.Sprintf(`{"eventId":7,"subscriptionId":9,"portalId":42,"occurredAt":1767225600000,`+
		`"subscriptionType":%q,"attemptNumber":0,"objectId":1001,"changeSource":"CRM_UI","sourceId":"userId:5"%s}`, typ, extra)
}

func TestActions(t *testing.T) {
	type want struct {
		entity, record, name, user string
		action                     crmpulse.Action
		fields                     []string
	}
	tests := []struct {
		name    string
		item    string
		want    *want // nil: no event
		ignored string
	}{
		{"contact creation", item("contact.creation", ""),
			&want{"contact", "1001", "", "5", crmpulse.Created, nil}, ""},
		{"company name change", item("company.propertyChange", `,"propertyName":"name","propertyValue":"Acme"`),
			&want{"account", "1001", "Acme", "5", crmpulse.Updated, []string{"name"}}, ""},
		{"contact name is not taken", item("contact.propertyChange", `,"propertyName":"name","propertyValue":"X"`),
			&want{"contact", "1001", "", "5", crmpulse.Updated, []string{"name"}}, ""},
		{"deal deletion", item("deal.deletion", ""),
			&want{"opportunity", "1001", "", "5", crmpulse.Deleted, nil}, ""},
		{"deal restore", item("deal.restore", ""),
			&want{"opportunity", "1001", "", "5", crmpulse.Restored, nil}, ""},
		{"merge to a new id", item("contact.merge", `,"primaryObjectId":1001,"mergedObjectIds":[1002],"newObjectId":1003`),
			&want{"contact", "1003", "", "5", crmpulse.Updated, nil}, ""},
		{"merge into the primary", item("company.merge", `,"primaryObjectId":1001,"mergedObjectIds":[1002],"newObjectId":0`),
			&want{"account", "1001", "", "5", crmpulse.Updated, nil}, ""},
		{"association change", item("contact.associationChange", `,"fromObjectId":1,"toObjectId":2`), nil, "contact.associationChange"},
		{"privacy deletion", item("contact.privacyDeletion", ""), nil, "contact.privacyDeletion"},
		{"unknown action", item("deal.somethingNew", ""), nil, "deal.somethingNew"},
		{"object contact", item("object.creation", `,"objectTypeId":"0-1"`),
			&want{"contact", "1001", "", "5", crmpulse.Created, nil}, ""},
		{"object company", item("object.propertyChange", `,"objectTypeId":"0-2","propertyName":"name","propertyValue":"Acme"`),
			&want{"account", "1001", "Acme", "5", crmpulse.Updated, []string{"name"}}, ""},
		{"object deal", item("object.deletion", `,"objectTypeId":"0-3"`),
			&want{"opportunity", "1001", "", "5", crmpulse.Deleted, nil}, ""},
		{"object ticket", item("object.creation", `,"objectTypeId":"0-5"`),
			&want{"ticket", "1001", "", "5", crmpulse.Created, nil}, ""},
		{"object lead", item("object.restore", `,"objectTypeId":"0-136"`),
			&want{"lead", "1001", "", "5", crmpulse.Restored, nil}, ""},
		{"custom object", item("object.creation", `,"objectTypeId":"2-123456"`),
			&want{"object_2_123456", "1001", "", "5", crmpulse.Created, nil}, ""},
		{"integration is unattributed", strings.Replace(item("deal.creation", ""), `"userId:5"`, `"CompanyInsightsPropertyMappings"`, 1),
			&want{"opportunity", "1001", "", "", crmpulse.Created, nil}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decode(t, []byte("["+tt.item+"]"))
			if tt.want == nil {
				if len(d.Events) != 0 || d.Ignored[tt.ignored] != 1 {
					t.Fatalf("got events %+v, ignored %v; want none and %s ignored once", d.Events, d.Ignored, tt.ignored)
				}
				return
			}
			if len(d.Events) != 1 {
				t.Fatalf("got %d events, want 1", len(d.Events))
			}
			e := d.Events[0]
			got := want{e.Entity, e.Record, e.RecordName, e.User, e.Action, e.Fields}
			if fmt.Sprint(got) != fmt.Sprint(*tt.want) {
				t.Errorf("got %+v, want %+v", got, *tt.want)
			}
			if e.ID != "9:7:1001:1767225600000" || e.Tenant != "42" {
				t.Errorf("id %q tenant %q", e.ID, e.Tenant)
			}
		})
	}
}

func TestRedelivery(t *testing.T) {
	first := []byte("[" + item("deal.propertyChange", `,"propertyName":"amount","propertyValue":"10"`) + "]")
	retry := []byte(strings.Replace(string(first), `"attemptNumber":0`, `"attemptNumber":3`, 1))
	second := []byte(strings.NewReplacer(`"eventId":7`, `"eventId":8`,
		`"occurredAt":1767225600000`, `"occurredAt":1767225660000`).Replace(string(first)))

	a := decode(t, first).Events[0]
	r := v3Request(t, path, "1767225650000", retry)
	d, err := newHook().Decode(r, retry, time.UnixMilli(1767225651000))
	if err != nil {
		t.Fatal(err)
	}
	b := d.Events[0]
	c := decode(t, second).Events[0]
	if a.Identity() != b.Identity() {
		t.Errorf("redelivery identity %q, want %q", b.Identity(), a.Identity())
	}
	if a.Identity() == c.Identity() {
		t.Errorf("two updates share the identity %q", a.Identity())
	}
}

func TestMalformed(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"not JSON", `[{"eventId":`},
		{"not an array of objects", `[1,2]`},
		{"trailing data", `[] []`},
		{"missing objectId", `[{"subscriptionType":"contact.creation","occurredAt":1767225600000}]`},
		{"occurredAt as text", `[{"subscriptionType":"contact.creation","objectId":1,"occurredAt":"soon"}]`},
		{"occurredAt in seconds", `[{"subscriptionType":"contact.creation","objectId":1,"occurredAt":1767225600.5}]`},
		{"occurredAt in the future", `[{"subscriptionType":"contact.creation","objectId":1,"occurredAt":1767229200000}]`},
		{"objectId as object", `[{"subscriptionType":"contact.creation","objectId":{},"occurredAt":1767225600000}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			_, err := newHook().Decode(v3Request(t, path, timestamp, body), body, now)
			if got := ingesttest.Status(err); got != 400 {
				t.Fatalf("status = %d (%v), want 400", got, err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(ingesttest.Payload(f, "testdata/batch.json"))
	f.Add(ingesttest.Payload(f, "testdata/v1-vector.json"))
	f.Add([]byte("[" + item("contact.merge", `,"newObjectId":12`) + "]"))
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := newHook().Decode(v3Request(t, path, timestamp, body), body, now)
		ingesttest.Sound(t, d, err, now)
	})
}

// FuzzReadBatch checks that readBatch reads what ingest.DecodeJSON reads,
// and takes nothing it refuses: Decode falls back to it for whatever
// readBatch leaves.
func FuzzReadBatch(f *testing.F) {
	f.Add(ingesttest.Payload(f, "testdata/batch.json"))
	f.Add(ingesttest.Payload(f, "testdata/v1-vector.json"))
	for _, s := range []string{`[]`, `{}`, ` {"eventId":1} `, `null`, `[null]`, `[{"EventId":1}]`,
		`[{"eventId":"a","eventId":null}]`, `[{"objectId":01}]`, `[{"objectId":-1.5e-3}]`, `[{"objectId":true}]`,
		`[{"sourceId":1}]`, `[{"sourceId":null}]`, `[{"propertyValue":"\u00e9"}]`, `[{"propertyValue":"é"}]`,
		`[{"appId":{"a":[1,{"b":null}]}}]`, `[{"ſubscriptionType":"x"}]`, `[{}] x`, `[{},]`, "\v[]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := readBatch(body)
		if !ok {
			return
		}
		var want []notification
		var err error
		if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '{' {
			want = make([]notification, 1)
			err = ingest.DecodeJSON(body, &want[0])
		} else {
			err = ingest.DecodeJSON(body, &want)
		}
		if err != nil {
			t.Fatalf("readBatch took %q, which DecodeJSON refuses: %v", body, err)
		}
		if len(got) != len(want) || len(got) > 0 && !reflect.DeepEqual(got, want) {
			t.Fatalf("readBatch(%q):\n got %#v\nwant %#v", body, got, want)
		}
	})
}

func TestReadBatchTakesHubSpotPayloads(t *testing.T) {
	for _, name := range []string{"testdata/batch.json", "testdata/v1-vector.json"} {
		if _, ok := readBatch(ingesttest.Payload(t, name)); !ok {
			t.Errorf("readBatch left %s to encoding/json", name)
		}
	}
}
