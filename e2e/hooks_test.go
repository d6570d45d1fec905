package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// signV3 computes HubSpot's v3 signature as SOURCES.md §1.3 defines it:
// base64 HMAC-SHA256 of method, URI, body and timestamp.
func signV3(secret, method, uri string, body []byte, timestamp string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(method + uri))
	mac.Write(body)
	mac.Write([]byte(timestamp))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// TestHubSpotHook posts the SOURCES.md §1.5 batch, freshly signed, and finds
// its three events in the report; a bad signature and a stale timestamp are
// refused and count nothing.
func TestHubSpotHook(t *testing.T) {
	const secret = "0c1d2e3f-4a5b-4c6d-8e9f-a0b1c2d3e4f5"
	body, err := os.ReadFile(repoFile("ingest", "hubspot", "testdata", "batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "", "CRMPULSE_HUBSPOT_SECRET="+secret, "CRMPULSE_INGEST_TOKEN=x")
	post := func(sig, ts string) int {
		req, _ := http.NewRequest("POST", s.url+"/v1/hooks/hubspot", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-HubSpot-Signature-v3", sig)
		req.Header.Set("X-HubSpot-Request-Timestamp", ts)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	uri := s.url + "/v1/hooks/hubspot"
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	stale := strconv.FormatInt(time.Now().Add(-10*time.Minute).UnixMilli(), 10)

	if code := post(signV3("wrong-secret", "POST", uri, body, now), now); code != http.StatusUnauthorized {
		t.Errorf("bad signature: status %d, want 401", code)
	}
	if code := post(signV3(secret, "POST", uri, body, stale), stale); code != http.StatusUnauthorized {
		t.Errorf("stale timestamp: status %d, want 401", code)
	}
	const day = "period=custom&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&tenant=7700001"
	if r := s.report(day); len(r.Users) != 0 {
		t.Fatalf("refused deliveries left %d rows", len(r.Users))
	}
	for range 2 { // a redelivery counts once
		if code := post(signV3(secret, "POST", uri, body, now), now); code != http.StatusAccepted {
			t.Fatalf("signed delivery: status %d, want 202\n%s", code, s.logs)
		}
	}
	s.waitReady()
	got := s.report(day)
	want := map[string]map[string]int{
		"hubspot:2000001": {"contact created": 1, "lead created": 1},
		"hubspot:2000002": {"opportunity updated": 1},
	}
	if len(got.Users) != len(want) {
		t.Errorf("rows = %d, want %d", len(got.Users), len(want))
	}
	for _, u := range got.Users {
		for key, n := range want[u.ID] {
			entity, action, _ := strings.Cut(key, " ")
			if u.Counts[entity][action] != n {
				t.Errorf("%s %s = %d, want %d", u.ID, key, u.Counts[entity][action], n)
			}
		}
		if u.Total["changes"] != len(want[u.ID]) {
			t.Errorf("%s changes = %d, want %d", u.ID, u.Total["changes"], len(want[u.ID]))
		}
	}
}
