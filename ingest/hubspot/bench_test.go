package hubspot

import (
	"fmt"
	"testing"
)

// BenchmarkDecode decodes a signed delivery of 100 notifications, as
// figure 1 of make bench sends them.
func BenchmarkDecode(b *testing.B) {
	body := []byte{'['}
	for i := range 100 {
		if i > 0 {
			body = append(body, ',')
		}
		body = fmt.Appendf(body, `{"eventId":%d,"subscriptionId":880001,"portalId":7700001,"appId":990001,`+
			`"occurredAt":1767225600000,"subscriptionType":"contact.propertyChange","attemptNumber":0,`+
			`"objectId":%d,"changeSource":"CRM_UI","sourceId":"userId:%d","propertyName":"phone",`+
			`"propertyValue":"value %d"}`, 3_100_000_000+i, 51_000_000_000+i, 2_000_000+i%300, i)
	}
	body = append(body, ']')
	h := newHook()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r := v3Request(b, path, timestamp, body)
		if _, err := h.Decode(r, body, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*100), "µs/event")
}
