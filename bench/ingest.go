package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crmpulse/crmpulse/ingest/hubspot"
)

// hubspotPortal is the tenant of the HubSpot deliveries (portalId).
const hubspotPortal = 7700001

// IngestResult is figure 1.
type IngestResult struct {
	Acked     int64
	Sending   time.Duration
	CatchUp   time.Duration
	Errors    int64
	Counted   int64 // changes the report counts afterwards
	FirstFail string
}

// Acked is acknowledged events/s while sending.
func (r IngestResult) AckRate() float64 { return float64(r.Acked) / r.Sending.Seconds() }

// AppliedRate is events/s until the last one was applied.
func (r IngestResult) AppliedRate() float64 {
	return float64(r.Acked) / (r.Sending + r.CatchUp).Seconds()
}

// RunIngest is figure 1: senders post signed HubSpot batches of 100 events
// for d, each waiting for its answer; then the time until /readyz says the
// workers caught up, and a report that must count every event.
func RunIngest(ctx context.Context, s *Server, senders int, d time.Duration) (IngestResult, error) {
	var res IngestResult
	var acked, errs, nextID atomic.Int64
	var firstFail sync.Once
	client := &http.Client{Timeout: time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: senders, DisableCompression: true}}
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range senders {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			var body []byte
			for time.Now().Before(deadline) && ctx.Err() == nil {
				body = hubspotBatch(body[:0], r, &nextID)
				if err := postHubSpot(ctx, client, s.URL, body); err != nil {
					errs.Add(1)
					firstFail.Do(func() { res.FirstFail = err.Error() })
					continue
				}
				acked.Add(100)
			}
		})
	}
	wg.Wait()
	res.Sending = time.Since(start)
	res.Acked, res.Errors = acked.Load(), errs.Load()

	catchUp, err := s.WaitReady(ctx, 10*time.Minute)
	if err != nil {
		return res, err
	}
	res.CatchUp = catchUp
	res.Counted, err = countedChanges(ctx, s, strconv.Itoa(hubspotPortal), start.Add(-8*24*time.Hour))
	return res, err
}

// hubspot subscription types sent, with the object type of the generic ones.
var hubspotKinds = []struct{ kind, objectType, property string }{
	{"contact.creation", "", ""},
	{"contact.propertyChange", "", "phone"},
	{"contact.propertyChange", "", "lifecyclestage"},
	{"deal.propertyChange", "", "dealstage"},
	{"deal.propertyChange", "", "amount"},
	{"deal.creation", "", ""},
	{"company.propertyChange", "", "name"},
	{"object.propertyChange", "0-136", "hs_lead_status"},
	{"object.creation", "0-136", ""},
	{"contact.deletion", "", ""},
}

// hubspotBatch appends a realistic delivery of 100 notifications: a few
// hundred users of one portal changing contacts, deals, companies and
// leads, occurred within the last week.
func hubspotBatch(b []byte, r *rand.Rand, nextID *atomic.Int64) []byte {
	now := time.Now().UnixMilli()
	b = append(b, '[')
	for i := range 100 {
		if i > 0 {
			b = append(b, ',')
		}
		k := hubspotKinds[r.IntN(len(hubspotKinds))]
		id := nextID.Add(1)
		b = fmt.Appendf(b, `{"eventId":%d,"subscriptionId":%d,"portalId":%d,"appId":990001,"occurredAt":%d,`+
			`"subscriptionType":%q,"attemptNumber":0,"objectId":%d,"changeSource":"CRM_UI","sourceId":"userId:%d"`,
			3_100_000_000+id, 880_000+r.IntN(10), hubspotPortal, now-r.Int64N(7*24*3600*1000),
			k.kind, 51_000_000_000+r.Int64N(2_000_000), 2_000_000+r.IntN(300))
		if k.objectType != "" {
			b = fmt.Appendf(b, `,"objectTypeId":%q`, k.objectType)
		}
		if k.property != "" {
			b = fmt.Appendf(b, `,"propertyName":%q,"propertyValue":"value %d"`, k.property, r.IntN(1000))
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// postHubSpot sends one delivery signed with v3 and a fresh timestamp.
func postHubSpot(ctx context.Context, client *http.Client, base string, body []byte) error {
	url := base + "/v1/hooks/hubspot"
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-HubSpot-Request-Timestamp", ts)
	req.Header.Set("X-HubSpot-Signature-v3", hubspot.SignatureV3(hubspotSecret, "POST", url, body, ts))
	return expect(client.Do(req))
}

// expect drains an answer and turns a status of 300 or more into an error.
func expect(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(answer))
	}
	return nil
}

// countedChanges sums the report's changes for tenant since from, to check
// that what was acknowledged is queryable.
func countedChanges(ctx context.Context, s *Server, tenant string, from time.Time) (int64, error) {
	url := fmt.Sprintf("%s/v1/report?period=custom&tz=UTC&tenant=%s&from=%s&to=%s", s.URL, tenant,
		from.UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		return 0, fmt.Errorf("report: %w", err)
	}
	defer resp.Body.Close()
	var rep struct {
		Totals map[string]struct {
			Changes int64 `json:"changes"`
		} `json:"totals"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return 0, fmt.Errorf("report: %w", err)
	}
	var n int64
	for _, t := range rep.Totals {
		n += t.Changes
	}
	return n, nil
}
