package ingest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecodeEventsNDJSON(t *testing.T) {
	body := []byte(`{"user":"u","entity":"lead","record":"1","action":"created","at":"2026-01-01T00:00:00+01:00"}

{"user":"u","entity":"lead","record":"2","action":"updated","at":"2026-01-01T00:00:00Z","fields":["stage"]}
`)
	events, _, errs, err := DecodeEvents(body, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
	if err != nil || len(errs) != 0 || len(events) != 2 {
		t.Fatalf("events %d, errs %v, err %v; want 2 valid events", len(events), errs, err)
	}
	if got, want := events[0].At, time.Date(2025, 12, 31, 23, 0, 0, 0, time.UTC); !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("at = %v, want %v in UTC", got, want)
	}
	if events[0].Tenant != "default" || events[0].Source != "api" {
		t.Errorf("defaults = %q/%q, want default/api", events[0].Tenant, events[0].Source)
	}
}

func TestDecodeEventsRejects(t *testing.T) {
	now := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name, body, field string
	}{
		{"future", `[{"user":"u","entity":"lead","record":"1","action":"created","at":"2026-02-01T00:06:00Z"}]`, "at"},
		{"entity case", `[{"user":"u","entity":"Lead","record":"1","action":"created","at":"2026-01-01T00:00:00Z"}]`, "entity"},
		{"record type", `[{"user":"u","entity":"lead","record":5,"action":"created","at":"2026-01-01T00:00:00Z"}]`, "record"},
		{"not an object", `[17]`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, _, errs, err := DecodeEvents([]byte(tt.body), now)
			if err != nil || len(events) != 0 || len(errs) != 1 || errs[0].Field != tt.field {
				t.Errorf("events %d, errs %+v, err %v; want one error on %q", len(events), errs, err, tt.field)
			}
		})
	}
}

func FuzzDecodeEvents(f *testing.F) {
	f.Add([]byte(`[{"user":"u","entity":"lead","record":"1","action":"created","at":"2026-01-01T00:00:00Z"}]`))
	f.Add([]byte("{\"record\":\"1\"}\n{\"at\":1}\n"))
	f.Add([]byte(`{"User":5,"user":"a","ENTITY":"lead","record":"r","action":"created","at":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"USER":"x","Entity":"lead","record":"\u00e9","action":"updated","at":"2026-01-01T00:00:00Z","fields":[1]}`))
	now := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		events, idx, errs, err := DecodeEvents(body, now)
		if err != nil {
			return
		}
		if len(idx) != len(events) {
			t.Fatalf("%d indexes for %d events", len(idx), len(events))
		}
		for i := range events {
			if bad := events[i].Validate(now); len(bad) > 0 {
				t.Fatalf("an accepted event is invalid: %+v", bad)
			}
		}
		for _, e := range errs {
			if e.Index == nil {
				t.Fatalf("error without index: %+v", e)
			}
		}
		// The one-pass read and the field-by-field read of each item
		// agree.
		raws, _ := splitItems(body)
		for _, raw := range raws {
			fast, fastErrs := decodeEvent(raw, now)
			slow, slowErrs := decodeFields(raw, now)
			if fmt.Sprint(fast, fastErrs) != fmt.Sprint(slow, slowErrs) {
				t.Fatalf("item %s:\none pass  %+v %+v\nby field  %+v %+v", raw, fast, fastErrs, slow, slowErrs)
			}
		}
	})
}

// FuzzReadPosted checks that the one-pass read of a body gives what
// encoding/json gives, and takes nothing it refuses: DecodeEvents falls
// back to it for whatever readPosted leaves.
func FuzzReadPosted(f *testing.F) {
	const event = `{"id":"e1","user":"u","entity":"lead","record":"1","action":"created","at":"2026-01-01T00:00:00Z","fields":["a"]}`
	for _, s := range []string{event, "[" + event + "," + event + "]", event + "\n\n" + event + "\n", "[]", "\v[" + event + "]",
		`[null]`, `{}{}`, `{"user":"a","user":"b"}`, `{"User":"a"}`, `{"ſource":"x"}`, `{"fields":null}`, `{"fields":[]}`,
		`{"record":"\u00e9"}`, `{"record":"é"}`, `{"record":5}`, `{"x":{"y":[1,true,null]}}`, `[{}] x`, `[{},]`,
		"{\"record\":\"\xff\"}", `{"at":"2026-13-01T00:00:00Z"}`, "{}\n[]"} {
		f.Add([]byte(s))
	}
	// Valid events but for one member, so that a difference shows in the
	// event and not only in its problems.
	for _, member := range []string{`"User":"x"`, `"user":"x","user":null`, `"record":"\u00e9"`, `"fields":[]`,
		`"fields":null`, `"RECORD_NAME":"x"`, `"extra":[{"a":1}]`, `"source":"x","source":"y"`} {
		f.Add([]byte(event[:len(event)-1] + "," + member + "}"))
	}
	now := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, ok := readPosted(body); !ok {
			return
		}
		events, idx, errs, err := DecodeEvents(body, now)
		if err != nil {
			t.Fatalf("readPosted took %q, and DecodeEvents refused it: %v", body, err)
		}
		wantEvents, wantIdx, wantErrs, err := decodeSlowly(body, now)
		if err != nil {
			t.Fatalf("readPosted took %q, which encoding/json refuses: %v", body, err)
		}
		if !reflect.DeepEqual(events, wantEvents) || !reflect.DeepEqual(idx, wantIdx) || !reflect.DeepEqual(errs, wantErrs) {
			t.Fatalf("body %q:\none pass       %+v %v %+v\nencoding/json  %+v %v %+v",
				body, events, idx, errs, wantEvents, wantIdx, wantErrs)
		}
	})
}

// TestReadPostedTakesWhatImportSends checks that the one pass reads the
// bodies crmpulse import and the README's examples send, so that they do
// not fall back to encoding/json.
func TestReadPostedTakesWhatImportSends(t *testing.T) {
	for _, body := range []string{
		`{"id":"row-1","tenant":"acme","source":"salesforce","user":"005","user_name":"Ana Ruiz","entity":"opportunity",` +
			`"record":"006","record_name":"Cancity renewal","action":"updated","fields":["StageName"],"at":"2026-01-02T10:00:00Z"}` + "\n",
		`[{"user":"u","entity":"lead","record":"1","action":"created","at":"2026-01-01T00:00:00+01:00"}]`,
	} {
		if posted, ok := readPosted([]byte(body)); !ok || len(posted) != 1 {
			t.Errorf("readPosted(%s) = %d events, %v; want 1, true", body, len(posted), ok)
		}
	}
}

func TestDecodeEventsRefusesWhatIsNoEvent(t *testing.T) {
	now := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	for _, body := range []string{"null", "17", "\"x\"", "{}\nnull\n"} {
		if _, _, _, err := DecodeEvents([]byte(body), now); err == nil {
			t.Errorf("body %q was read as events, want a 400", body)
		}
	}
	_, _, errs, err := DecodeEvents([]byte(`[{"user":"u","entity":"lead","record":"1","action":"created","at":"0001-01-01T00:00:00Z"}]`), now)
	if err != nil || len(errs) != 1 || errs[0].Detail != "must be between 1970 and 9999" {
		t.Errorf("a year-1 time gave %v, %v; want one error naming the range", errs, err)
	}
}

// FuzzText checks that Text reads any JSON string or number as
// encoding/json reads it: the fast paths for strings without escapes and
// for numbers change nothing.
func FuzzText(f *testing.F) {
	for _, seed := range []string{`"plain"`, `"esc\"aped\u00e9"`, "\"bad \xff utf-8\"", `12345678901234567890`,
		`-1.5e3`, `null`, `"日本"`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if !json.Valid([]byte(raw)) {
			return // not one JSON value: a decoder never calls Text
		}
		var v any
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		var want string
		switch v := v.(type) {
		case string:
			want = v
		case json.Number:
			want = string(v)
		case nil:
		default:
			return
		}
		var got Text
		if err := json.Unmarshal([]byte(raw), &got); err != nil {
			t.Fatalf("Text of %q: %v", raw, err)
		}
		if string(got) != want {
			t.Errorf("Text of %q = %q, want %q", raw, got, want)
		}
	})
}

// TestDecodeEventsSaysWhyALineIsNotJSON checks that a cut-off NDJSON line
// is named with what is wrong in it, not only as no object.
func TestDecodeEventsSaysWhyALineIsNotJSON(t *testing.T) {
	now := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	_, _, _, err := DecodeEvents([]byte("{}\n{\"user\":\"u-1\","), now)
	if err == nil || !strings.Contains(err.Error(), "line 2 is not valid JSON (unexpected end of JSON input)") {
		t.Errorf("a cut-off second line: %v, want it named with the reason", err)
	}
}
