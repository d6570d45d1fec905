// Package ingesttest holds what the source decoders' tests share: reading a
// golden file of expected canonical events and comparing a decoder's events
// with it by the rules of SOURCES-EXPECTED §1.1, and the property every fuzz
// target checks.
package ingesttest

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest"
)

// Now is the clock of the golden tests: 2026-01-01T00:05:00Z, inside the
// HubSpot fixture's five-minute v3 window and after every fixture's event.
var Now = time.Date(2026, 1, 1, 0, 5, 0, 0, time.UTC)

// comparable is e as SOURCES-EXPECTED compares it: normalized, metadata
// outside the reading dropped, fields as a sorted set (none is nil), at as a
// UTC instant.
func comparable(e crmpulse.Event) crmpulse.Event {
	e.Normalize()
	e.Received, e.Origin = time.Time{}, ""
	e.Fields = slices.Sorted(slices.Values(e.Fields))
	if len(e.Fields) == 0 {
		e.Fields = nil
	}
	return e
}

// Golden compares got, in order, with the events of the golden file at path
// (a JSON array in the canonical event shape).
func Golden(t *testing.T, path string, got []crmpulse.Event) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want []crmpulse.Event
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(got) != len(want) {
		t.Errorf("%s: got %d events, want %d", path, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		g, w := comparable(got[i]), comparable(want[i])
		gNoAt, wNoAt := g, w
		gNoAt.At, wNoAt.At = time.Time{}, time.Time{}
		if !g.At.Equal(w.At) || !reflect.DeepEqual(gNoAt, wNoAt) {
			gj, _ := json.Marshal(g)
			wj, _ := json.Marshal(w)
			t.Errorf("%s: event %d\n got %s\nwant %s", path, i, gj, wj)
		}
	}
}

// Payload reads a testdata file.
func Payload(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Sound fails t unless a decoder's answer is either an *ingest.Error or a
// delivery whose every event is valid at now: the property the fuzz targets
// check on any input.
func Sound(t *testing.T, d *ingest.Delivery, err error, now time.Time) {
	t.Helper()
	if err != nil {
		var e *ingest.Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v (%T) is not an *ingest.Error", err, err)
		}
		return
	}
	if d == nil {
		t.Fatal("nil delivery without an error")
	}
	SoundEvents(t, d.Events, now)
}

// SoundEvents fails t unless every event is valid at now.
func SoundEvents(t *testing.T, events []crmpulse.Event, now time.Time) {
	t.Helper()
	for i, e := range events {
		if errs := ingest.Invalid(&e, now); errs != nil {
			t.Fatalf("event %d %+v is invalid: %+v", i, e, errs)
		}
	}
}

// Status returns the HTTP status an error refuses with, 0 for nil and -1 for
// an error that is not an *ingest.Error.
func Status(err error) int {
	if err == nil {
		return 0
	}
	var e *ingest.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return -1
}
