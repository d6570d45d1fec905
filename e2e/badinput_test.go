package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

type problemBody struct {
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Index *int   `json:"index"`
		Field string `json:"field"`
	} `json:"errors"`
}

func TestBadEvents(t *testing.T) {
	const token = "ingest-secret-for-test"
	s := startServer(t, "", "CRMPULSE_INGEST_TOKEN="+token)
	now := time.Now().UTC().Format(time.RFC3339)
	good := map[string]any{"user": "u-1", "entity": "lead", "record": "L-1", "action": "created", "at": now}

	t.Run("malformed JSON is a 400", func(t *testing.T) {
		var p problemBody
		if code := s.do("POST", "/v1/events", token, []byte(`[{"user": "u-1",`), &p); code != http.StatusBadRequest {
			t.Fatalf("status = %d, want 400", code)
		}
		if p.Status != 400 || p.Detail == "" {
			t.Errorf("problem = %+v, want status 400 and a detail", p)
		}
	})

	t.Run("invalid events are a 422 naming each, and nothing is counted", func(t *testing.T) {
		body := []map[string]any{
			good,
			{"user": "u-1", "entity": "lead", "action": "created", "at": now},                      // no record
			{"user": "u-1", "entity": "lead", "record": "L-3", "action": "touched", "at": now},     // unknown action
			{"user": "u-1", "entity": "lead", "record": "L-4", "action": "created", "at": "today"}, // not a time
		}
		var p problemBody
		if code := s.do("POST", "/v1/events", token, mustJSON(t, body), &p); code != http.StatusUnprocessableEntity {
			t.Fatalf("status = %d, want 422", code)
		}
		var got []string
		for _, e := range p.Errors {
			if e.Index == nil {
				t.Fatalf("error %+v has no index", e)
			}
			got = append(got, strings.Join([]string{string(rune('0' + *e.Index)), e.Field}, ":"))
		}
		if want := []string{"1:record", "2:action", "3:at"}; !reflect.DeepEqual(got, want) {
			t.Errorf("errors = %v, want %v", got, want)
		}
		var page struct {
			Items []any `json:"items"`
		}
		s.do("GET", "/v1/transactions?period=today", "", nil, &page)
		if len(page.Items) != 0 {
			t.Errorf("a rejected request left %d transactions", len(page.Items))
		}
	})

	t.Run("partial accepts the valid events", func(t *testing.T) {
		body := []map[string]any{good, {"user": "u-1", "entity": "lead", "record": "L-2", "action": "created"}}
		var answer struct {
			Accepted int   `json:"accepted"`
			Rejected []any `json:"rejected"`
		}
		if code := s.do("POST", "/v1/events?partial=true", token, mustJSON(t, body), &answer); code != http.StatusAccepted {
			t.Fatalf("status = %d, want 202", code)
		}
		if answer.Accepted != 1 || len(answer.Rejected) != 1 {
			t.Errorf("answer = %+v, want 1 accepted and 1 rejected", answer)
		}
	})

	t.Run("a wrong token is a 401", func(t *testing.T) {
		for _, tok := range []string{"", "wrong"} {
			var p problemBody
			if code := s.do("POST", "/v1/events", tok, mustJSON(t, []any{good}), &p); code != http.StatusUnauthorized {
				t.Errorf("token %q: status = %d, want 401", tok, code)
			}
		}
	})

	t.Run("the bearer scheme is taken in any case", func(t *testing.T) {
		req, _ := http.NewRequest("POST", s.url+"/v1/events", bytes.NewReader(mustJSON(t, good)))
		req.Header.Set("Authorization", "bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Errorf("the ingest token after \"bearer\": status %d, want 202", resp.StatusCode)
		}
	})
}

func TestImportBrokenLines(t *testing.T) {
	s := startServer(t, "")
	csvPath := filepath.Join(t.TempDir(), "pipeline.csv")
	content := strings.Join([]string{
		"opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,close_value",
		"A1,Ana Ruiz,GTX,Acme,Won,2017-01-05,2017-02-01,10", // line 2: two events
		"A2,Ana Ruiz,GTX,Acme,Won,2017-13-45,,",             // line 3: unreadable date
		"A3,,GTX,Acme,Engaging,2017-01-07,,",                // line 4: no user
		"A4,Bo Li,GTX,,Prospecting,,,",                      // line 5: no date, no event
		"A5,Bo Li,GTX,Acme,Engaging,2017-03-01,,",           // line 6: one event
	}, "\n") + "\n"
	if err := os.WriteFile(csvPath, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := s.crmpulse("import", csvPath, "--mapping", "examples/crm-sales-opportunities/pipeline.yaml")
	if code == 0 {
		t.Errorf("import of a file with broken rows exited 0")
	}
	for _, want := range []string{":3: engage_date:", ":4: sales_agent:"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q does not list %q", errOut, want)
		}
	}
	if !strings.Contains(out, "5 rows, 3 events sent, 1 rows without events, 2 broken rows") {
		t.Errorf("summary = %q", out)
	}
	r := s.report("period=custom&from=2017-01-01T00:00:00Z&to=2018-01-01T00:00:00Z")
	got := map[string]int{}
	for _, u := range r.Users {
		got[u.ID] = u.Total["changes"]
	}
	if want := map[string]int{"crm:Ana Ruiz": 2, "crm:Bo Li": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("changes by row = %v, want %v", got, want)
	}
}

// TestRouterErrorsAreProblems checks that the answers the router gives by
// itself, and odd query parameters, are problem+json 4xx like the rest.
func TestRouterErrorsAreProblems(t *testing.T) {
	s := startServer(t, "")
	tests := []struct {
		method, path string
		want         int
	}{
		{"GET", "/v1/nope", http.StatusNotFound},
		{"DELETE", "/v1/report", http.StatusMethodNotAllowed},
		{"GET", "/v1/hooks/hubspot", http.StatusNotFound},  // GET / serves files
		{"POST", "/v1/hooks/generic", http.StatusNotFound}, // no mapping configured
		{"GET", "/v1/transactions?format=pdf", http.StatusBadRequest},
		{"GET", "/v1/report?entity=BAN%20ANA", http.StatusBadRequest},
		{"GET", "/v1/users?limit=0", http.StatusBadRequest},
		{"GET", "/v1/users?cursor=nobody", http.StatusBadRequest},
		{"GET", "/v1/live", http.StatusBadRequest}, // not a websocket handshake
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, s.url+tt.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("got %d %s, want %d application/problem+json", resp.StatusCode, resp.Header.Get("Content-Type"), tt.want)
			}
		})
	}
}

// TestReportTakesDates checks that a custom period may be given as dates,
// meaning their midnights in the zone asked for.
func TestReportTakesDates(t *testing.T) {
	s := startServer(t, "")
	var rep struct {
		Period struct {
			From, To time.Time
		} `json:"period"`
	}
	if code := s.do("GET", "/v1/report?period=custom&from=2017-01-01&to=2018-01-01&tz=Europe/Madrid", "", nil, &rep); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	madrid, _ := time.LoadLocation("Europe/Madrid")
	if want := time.Date(2017, 1, 1, 0, 0, 0, 0, madrid); !rep.Period.From.Equal(want) {
		t.Errorf("from = %v, want %v", rep.Period.From, want)
	}
	if want := time.Date(2018, 1, 1, 0, 0, 0, 0, madrid); !rep.Period.To.Equal(want) {
		t.Errorf("to = %v, want %v", rep.Period.To, want)
	}
}

// TestUsersArePaged pages through the directory with limit and cursor.
func TestUsersArePaged(t *testing.T) {
	s := startServer(t, "")
	for _, id := range []string{"a", "b", "c"} {
		if code := s.do("PUT", "/v1/users/"+id, "", []byte(`{"name":"`+id+`"}`), nil); code != http.StatusOK {
			t.Fatalf("PUT %s: %d", id, code)
		}
	}
	var got []string
	cursor := ""
	for range 3 {
		var page struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
			Next *string `json:"next_cursor"`
		}
		s.do("GET", "/v1/users?limit=2&cursor="+cursor, "", nil, &page)
		for _, p := range page.Items {
			got = append(got, p.ID)
		}
		if page.Next == nil {
			break
		}
		cursor = *page.Next
	}
	if strings.Join(got, ",") != "a,b,c" {
		t.Errorf("paged ids = %v, want a,b,c", got)
	}
}

// TestLongRecordAndForeignCursor are two finds of a fresh user's trial: a
// record of 100,000 bytes was accepted and then stopped the worker, and a
// transactions cursor used with another period answered 500.
func TestLongRecordAndForeignCursor(t *testing.T) {
	s := startServer(t, "")
	yesterday := time.Now().UTC().AddDate(0, 0, -1).Format(time.RFC3339)
	long := map[string]any{"user": "u-1", "entity": "lead", "record": strings.Repeat("r", 100_000), "action": "created", "at": yesterday}
	var p problemBody
	if code := s.do("POST", "/v1/events", "", mustJSON(t, []any{long}), &p); code != http.StatusUnprocessableEntity ||
		len(p.Errors) != 1 || p.Errors[0].Field != "record" {
		t.Fatalf("a record of 100,000 bytes: %d %+v, want 422 on record", code, p)
	}
	var events []any
	for i := range 3 {
		events = append(events, map[string]any{"user": "u-1", "entity": "lead", "record": fmt.Sprint("L-", i), "action": "created", "at": yesterday})
	}
	if code := s.do("POST", "/v1/events", "", mustJSON(t, events), nil); code != http.StatusAccepted {
		t.Fatalf("POST: %d", code)
	}
	var page struct {
		Items []any   `json:"items"`
		Next  *string `json:"next_cursor"`
	}
	for deadline := time.Now().Add(10 * time.Second); page.Next == nil && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		s.do("GET", "/v1/transactions?period=yesterday&limit=1", "", nil, &page)
	}
	if page.Next == nil {
		t.Fatal("no second page of yesterday's transactions: the server stopped applying")
	}
	p = problemBody{}
	if code := s.do("GET", "/v1/transactions?period=today&cursor="+*page.Next, "", nil, &p); code != http.StatusBadRequest ||
		len(p.Errors) != 1 || p.Errors[0].Field != "cursor" {
		t.Errorf("yesterday's cursor for today: %d %+v, want 400 on cursor", code, p)
	}
}

// TestUnknownTokenIsRefused checks that a token that matches nothing is
// refused even where reads need none (a loopback address), so that a
// script with a mistyped token is told so, not answered as anonymous.
func TestUnknownTokenIsRefused(t *testing.T) {
	const admin = "cp_admin_e2e_token_0123456789"
	for _, env := range [][]string{nil, {"CRMPULSE_ADMIN_TOKEN=" + admin}} {
		s := startServer(t, "", env...)
		if code := s.do("GET", "/v1/report", "", nil, nil); code != http.StatusOK {
			t.Errorf("%v: a read without a token got %d, want 200", env, code)
		}
		if env != nil {
			if code := s.do("GET", "/v1/report", admin, nil, nil); code != http.StatusOK {
				t.Errorf("%v: a read with the admin token got %d, want 200", env, code)
			}
		}
		// The token as a bearer (the scheme's name in any case), and in
		// the query as the page sends one.
		for _, scheme := range []string{"Bearer", "bearer", ""} {
			req, _ := http.NewRequest("GET", s.url+"/v1/report", nil)
			if scheme != "" {
				req.Header.Set("Authorization", scheme+" cp_mistyped")
			} else {
				req.URL.RawQuery = "token=cp_mistyped"
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%v, scheme %q: an unknown token got %d %s, want 401 application/problem+json",
					env, scheme, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
		}
	}
}
