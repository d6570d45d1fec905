package e2e

import (
	"bytes"
	"net/http"
	"path/filepath"
	"testing"
)

// pipelineEvents makes the canonical events of sales_pipeline.csv by the
// example's reading, written out by the test itself.
func pipelineEvents(t *testing.T, dir string) []map[string]any {
	t.Helper()
	rows := readCSV(t, dir, "sales_pipeline.csv")
	var events []map[string]any
	for _, r := range rows {
		for _, ev := range []struct{ action, date string }{{"created", r[5]}, {"updated", r[6]}} {
			if ev.date == "" {
				continue
			}
			events = append(events, map[string]any{
				"tenant": "default", "source": "crm", "user": r[1], "entity": "opportunity",
				"record": r[0], "action": ev.action, "at": ev.date + "T00:00:00Z",
			})
		}
	}
	return events
}

// TestCrashDuringLoad kills the server with SIGKILL while events stream
// in: after a restart every acknowledged event is counted before anything
// is sent again, and loading everything again gives the clean figures.
func TestCrashDuringLoad(t *testing.T) {
	dir := sampleData(t)
	s := startServer(t, "")
	out, errOut, code := s.crmpulse("users", "import", filepath.Join(dir, "sales_teams.csv"),
		"--mapping", "examples/crm-sales-opportunities/roster.yaml")
	if code != 0 {
		t.Fatalf("users import: %s%s", out, errOut)
	}

	events := pipelineEvents(t, dir)
	const batch = 250
	acked := make(chan int, len(events)/batch+1) // acknowledged batches
	posted := make(chan struct{})
	go func() {
		defer close(posted)
		for i := 0; i < len(events); i += batch {
			end := min(i+batch, len(events))
			req, _ := http.NewRequest("POST", s.url+"/v1/events", jsonBody(t, events[i:end]))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				return
			}
			acked <- end
		}
	}()
	// Kill once a third of the events is acknowledged, while the rest is
	// still being sent.
	ackedUpTo := 0
	for ackedUpTo < len(events)/3 {
		select {
		case ackedUpTo = <-acked:
		case <-posted:
			t.Fatal("the load ended before the server was killed")
		}
	}
	s.kill()
	<-posted
	for len(acked) > 0 {
		ackedUpTo = <-acked
	}
	if ackedUpTo >= len(events) {
		t.Fatal("every event was acknowledged before the kill; the test proves nothing")
	}

	s.start()
	got := s.report("period=custom&from=2016-01-01T00:00:00Z&to=2019-01-01T00:00:00Z").figures("opportunity")
	wantMin := countByAgent(events[:ackedUpTo])
	wantMax := countByAgent(events[:min(ackedUpTo+batch, len(events))])
	for agent, w := range wantMin {
		for _, k := range []string{"created", "updated"} {
			if g := got[agent][k]; g < w[k] || g > wantMax[agent][k] {
				t.Errorf("after the crash %s %s = %d, want between %d (acknowledged) and %d (sent)",
					agent, k, g, w[k], wantMax[agent][k])
			}
		}
	}

	loadSample(t, s, dir)
	s.waitReady()
	checkYear2017(t, s, dir)
}

func countByAgent(events []map[string]any) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, e := range events {
		agent := e["user"].(string)
		if out[agent] == nil {
			out[agent] = map[string]int{}
		}
		out[agent][e["action"].(string)]++
	}
	return out
}

func jsonBody(t *testing.T, v any) *bytes.Reader {
	t.Helper()
	return bytes.NewReader(mustJSON(t, v))
}
