package ingest

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkDecodeEvents reads an NDJSON body of 5,000 events, as
// crmpulse import sends them.
func BenchmarkDecodeEvents(b *testing.B) {
	var body []byte
	for i := range 5000 {
		body = fmt.Appendf(body, `{"id":"row-%d","tenant":"acme","source":"salesforce","user":"005%07d",`+
			`"entity":"opportunity","record":"006%09d","record_name":"Renewal %d","action":"updated",`+
			`"fields":["StageName"],"at":"2026-01-%02dT10:00:00Z"}`+"\n", i, i%300, i, i, 1+i%28)
	}
	now := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		events, _, errs, err := DecodeEvents(body, now)
		if err != nil || len(errs) > 0 || len(events) != 5000 {
			b.Fatal(err, errs)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*5000), "µs/event")
}
