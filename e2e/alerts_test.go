package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// hookReceiver is a webhook target on 127.0.0.1 that passes on each state
// it receives.
func hookReceiver(t *testing.T) (string, <-chan map[string]any) {
	t.Helper()
	got := make(chan map[string]any, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var st map[string]any
		if err := json.Unmarshal(body, &st); err != nil {
			http.Error(w, "not JSON", http.StatusBadRequest)
			return
		}
		got <- st
	}))
	t.Cleanup(srv.Close)
	return srv.URL, got
}

func nextNotice(t *testing.T, notices <-chan map[string]any) map[string]any {
	t.Helper()
	select {
	case st := <-notices:
		return st
	case <-time.After(60 * time.Second):
		t.Fatal("no notification within a minute")
		return nil
	}
}

// TestAlertFiresLiveAndResolves runs the binary with a rule whose working
// calendar is every minute of every day and whose threshold is two
// seconds, so a new person fires at once on the real clock.
func TestAlertFiresLiveAndResolves(t *testing.T) {
	hookURL, notices := hookReceiver(t)
	cfgPath := quietRuleConfig(t, hookURL)
	s := startServerWith(t, "", []string{"--config", cfgPath}, "CRMPULSE_ALERT_INTERVAL=500ms")
	conn := dialLive(t, s)
	if err := conn.WriteJSON(map[string]any{"type": "subscribe", "view": map[string]string{"period": "today"}}); err != nil {
		t.Fatal(err)
	}
	if f := readFrame(t, conn); f.Type != "snapshot" {
		t.Fatalf("first frame = %q, want snapshot", f.Type)
	}

	person := map[string]any{"name": "Ana Ruiz", "team": "Central", "ids": map[string]string{"pipedrive": "3000007"}}
	if code := s.do("PUT", "/v1/users/ana", "", mustJSON(t, person), nil); code != http.StatusOK {
		t.Fatalf("PUT /v1/users/ana: %d", code)
	}
	// Someone outside the watched team is never notified about.
	other := map[string]any{"name": "Bo Lind", "team": "East"}
	if code := s.do("PUT", "/v1/users/bo", "", mustJSON(t, other), nil); code != http.StatusOK {
		t.Fatalf("PUT /v1/users/bo: %d", code)
	}

	st := nextNotice(t, notices)
	if st["state"] != "firing" || st["kind"] != "person_inactive" || st["person"].(map[string]any)["id"] != "ana" {
		t.Fatalf("notice = %v, want ana firing", st)
	}
	waitAlertFrame(t, conn, "firing")

	var alerts struct {
		Rules []struct {
			Name        string   `json:"name"`
			Watch       any      `json:"watch"`
			InactiveFor string   `json:"inactive_for"`
			Notify      []string `json:"notify"`
		} `json:"rules"`
		States []map[string]any `json:"states"`
	}
	if code := s.do("GET", "/v1/alerts", "", nil, &alerts); code != http.StatusOK {
		t.Fatalf("GET /v1/alerts: %d", code)
	}
	if len(alerts.Rules) != 1 || alerts.Rules[0].InactiveFor != "2s" || alerts.Rules[0].Notify[0] != "managers" {
		t.Errorf("rules = %+v", alerts.Rules)
	}
	if len(alerts.States) != 1 || alerts.States[0]["state"] != "firing" || alerts.States[0]["last_notified"] == nil {
		t.Errorf("states = %v, want ana firing", alerts.States)
	}

	// Her Pipedrive id acts: the alert resolves.
	event := map[string]any{"id": "evt-alert-1", "source": "pipedrive", "user": "3000007",
		"entity": "deal", "record": "D-1", "action": "updated", "at": time.Now().UTC().Format(time.RFC3339)}
	if code := s.do("POST", "/v1/events", "", mustJSON(t, []any{event}), nil); code != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %d", code)
	}
	if st := nextNotice(t, notices); st["state"] != "resolved" {
		t.Fatalf("notice = %v, want resolved", st)
	}
	waitAlertFrame(t, conn, "resolved")
}

// quietRuleConfig writes a configuration whose working calendar is every
// minute of every day and whose rule fires for team Central after two
// seconds, and returns its path.
func quietRuleConfig(t *testing.T, hookURL string) string {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "crmpulse.yaml")
	cfg := fmt.Sprintf(`
calendar:
  working_days: [mon, tue, wed, thu, fri, sat, sun]
  working_hours: "00:00-23:59"
alerts:
  targets:
    - name: managers
      webhook: {url: %q}
  rules:
    - name: quiet
      watch: [{team: Central}]
      inactive_for: 2s
      pending: 0s
      repeat: 24h
      notify: [managers]
`, hookURL)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath
}

// TestPageShowsAlertsLive opens the page, then adds a person the rule
// watches: the firing alert appears on the page without a reload, with the
// person's name as text.
func TestPageShowsAlertsLive(t *testing.T) {
	ctx := browser(t)
	hookURL, _ := hookReceiver(t)
	s := startServerWith(t, "", []string{"--config", quietRuleConfig(t, hookURL)}, "CRMPULSE_ALERT_INTERVAL=500ms")
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(wait, chromedp.Navigate(s.url+"/?period=today"), chromedp.WaitVisible(`#status.live`)); err != nil {
		t.Fatalf("page: %v", err)
	}
	person := map[string]any{"name": "Ana <b>Ruiz</b>", "team": "Central"}
	if code := s.do("PUT", "/v1/users/ana", "", mustJSON(t, person), nil); code != http.StatusOK {
		t.Fatalf("PUT /v1/users/ana: %d", code)
	}
	if err := chromedp.Do(wait, chromedp.WaitVisible(`#alerts li.firing`)); err != nil {
		t.Fatalf("no firing alert on the page: %v", err)
	}
	text, err := chromedp.Run(wait, chromedp.Text(`#alerts li.firing`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, "Ana <b>Ruiz</b>: firing") {
		t.Errorf("alert reads %q, want the name as text and the state", text)
	}
}

// waitAlertFrame reads live frames until an alert frame in state arrives.
func waitAlertFrame(t *testing.T, conn interface {
	SetReadDeadline(time.Time) error
	ReadJSON(any) error
}, state string) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var f struct {
			Type  string         `json:"type"`
			Alert map[string]any `json:"alert"`
		}
		if err := conn.ReadJSON(&f); err != nil {
			t.Fatalf("no alert frame in state %s: %v", state, err)
		}
		if f.Type == "alert" && f.Alert["state"] == state {
			return
		}
	}
}

// TestUnmappedIdsAndMapping lists an id no person claims, maps it with a
// PUT, and checks that the report moves its history to the person.
func TestUnmappedIdsAndMapping(t *testing.T) {
	s := startServer(t, "")
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	event := map[string]any{"id": "evt-unmapped-1", "source": "hubspot", "user": "2000001",
		"entity": "contact", "record": "C-1", "action": "created", "at": at.Format(time.RFC3339)}
	if code := s.do("POST", "/v1/events", "", mustJSON(t, []any{event}), nil); code != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %d", code)
	}
	var list struct {
		Items []struct {
			ID, Source, User string
			LastActivity     time.Time `json:"last_activity"`
		} `json:"items"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(list.Items) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if code := s.do("GET", "/v1/users/unmapped", "", nil, &list); code != http.StatusOK {
			t.Fatalf("GET /v1/users/unmapped: %d", code)
		}
	}
	if len(list.Items) != 1 || list.Items[0].ID != "hubspot:2000001" || list.Items[0].Source != "hubspot" ||
		list.Items[0].User != "2000001" || !list.Items[0].LastActivity.Equal(at) {
		t.Fatalf("unmapped = %+v, want hubspot:2000001 last active at %s", list.Items, at)
	}

	person := map[string]any{"name": "Anna Snelling", "ids": map[string]string{"hubspot": "2000001"}}
	if code := s.do("PUT", "/v1/users/anna", "", mustJSON(t, person), nil); code != http.StatusOK {
		t.Fatalf("PUT /v1/users/anna: %d", code)
	}
	list.Items = nil
	s.do("GET", "/v1/users/unmapped", "", nil, &list)
	if len(list.Items) != 0 {
		t.Errorf("unmapped after mapping = %+v, want none", list.Items)
	}
	rep := s.report("period=last_7_days&tz=UTC").figures("contact")
	if got := rep["anna"]["created"]; got != 1 {
		t.Errorf("anna's contacts created = %d, want the mapped id's 1", got)
	}
	if _, still := rep["hubspot:2000001"]; still {
		t.Errorf("the report still has a row for the mapped id")
	}

	if code := s.do("GET", "/v1/users/unmapped?since=yesterday", "", nil, nil); code != http.StatusBadRequest {
		t.Errorf("since=yesterday: status %d, want 400", code)
	}
}
