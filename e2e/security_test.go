package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"
)

// The secured server's people, tokens and passwords.
const (
	adminToken  = "admin-token-0123456789"
	readToken   = "east-reader-token-0123456789"
	ingestOnly  = "ingest-only-token-0123456789"
	rootPass    = "root-password-xyz"
	managerPass = "manager-password-xyz"
	managerName = "Dustin Brinkmann"
)

// securedServer starts crmpulse with sign-in configured: an administrator,
// a manager with no team of their own (their team comes from the people
// they manage), a read token bound to team East and an ingest-only token.
// It puts one person in Central and one in East, each with an event.
func securedServer(t *testing.T, env ...string) (*server, string) {
	t.Helper()
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	ingestHash := fmt.Sprintf("%x", sha256Sum(ingestOnly))
	cfg := fmt.Sprintf(`
auth:
  users:
    - {name: root, password_hash: %q, role: admin}
    - {name: %q, password_hash: %q, role: manager}
  tokens:
    - {name: east-reader, token_env: CRMPULSE_TEST_READ_TOKEN, scopes: [read], team: East}
    - {name: feeder, token_hash: "sha256:%s", scopes: [ingest]}
`, hash(rootPass), managerName, hash(managerPass), ingestHash)
	path := filepath.Join(t.TempDir(), "crmpulse.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env = append([]string{"CRMPULSE_ADMIN_TOKEN=" + adminToken, "CRMPULSE_TEST_READ_TOKEN=" + readToken}, env...)
	s := startServerWith(t, "", []string{"--config", path}, env...)
	for _, p := range []map[string]any{
		{"id": "Anna Snelling", "name": "Anna Snelling", "team": "Central", "manager": managerName},
		{"id": "Boris East", "name": "Boris East", "team": "East", "manager": "Someone Else"},
	} {
		if code := s.do("PUT", "/v1/users/"+url.PathEscape(p["id"].(string)), adminToken, mustJSON(t, p), nil); code != http.StatusOK {
			t.Fatalf("PUT person: status %d", code)
		}
	}
	at := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	events := []map[string]any{
		{"id": "sec-1", "user": "Anna Snelling", "entity": "lead", "record": "L-1", "action": "created", "at": at},
		{"id": "sec-2", "user": "Boris East", "entity": "lead", "record": "L-2", "action": "created", "at": at},
		{"id": "sec-3", "source": "pipedrive", "user": "9", "entity": "lead", "record": "L-3", "action": "created", "at": at},
	}
	if code := s.do("POST", "/v1/events", adminToken, mustJSON(t, events), nil); code != http.StatusAccepted {
		t.Fatalf("POST events: status %d", code)
	}
	s.waitReady()
	return s, signIn(t, s, managerName, managerPass)
}

// period covers the seeded events.
func period() string {
	v := url.Values{"period": {"custom"},
		"from": {time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)},
		"to":   {time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}}
	return v.Encode()
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// signIn posts the sign-in form and returns the session cookie.
func signIn(t *testing.T, s *server, name, password string) string {
	t.Helper()
	resp, err := noRedirect.PostForm(s.url+"/signin", url.Values{"name": {name}, "password": {password}, "next": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in as %s: status %d", name, resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "crmpulse_session" {
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
				t.Errorf("session cookie: HttpOnly %v SameSite %v, want HttpOnly and Lax", c.HttpOnly, c.SameSite)
			}
			return c.Name + "=" + c.Value
		}
	}
	t.Fatal("sign-in set no session cookie")
	return ""
}

// cred is a way to present credentials: a bearer token or a cookie.
type cred struct{ bearer, cookie string }

func (s *server) send(method, path string, c cred, body []byte) (*http.Response, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(string(body)))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	if c.cookie != "" {
		req.Header.Set("Cookie", c.cookie)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

// TestEveryProtectedRouteRefuses walks every route API.md does not list as
// public with no credentials, wrong credentials and the wrong role.
func TestEveryProtectedRouteRefuses(t *testing.T) {
	s, manager := securedServer(t)
	feeder, reader, mgr := cred{bearer: ingestOnly}, cred{bearer: readToken}, cred{cookie: manager}
	person := mustJSON(t, map[string]any{"name": "X", "team": "Central"})
	routes := []struct {
		method, path string
		body         []byte
		wrongRole    cred
	}{
		{"POST", "/v1/events", []byte(`[]`), reader},
		{"GET", "/v1/report", nil, feeder},
		{"GET", "/v1/transactions", nil, feeder},
		{"GET", "/v1/transactions?format=csv", nil, feeder},
		{"GET", "/v1/users", nil, feeder},
		{"PUT", "/v1/users/x", person, mgr},
		{"GET", "/v1/live", nil, feeder},
		{"GET", "/metrics", nil, feeder},
		{"GET", "/v1/alerts", nil, feeder},
		{"GET", "/v1/audit", nil, mgr},
	}
	forged := strings.Replace(manager, "crmpulse_session=", "crmpulse_session=x", 1)
	for _, rt := range routes {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			if resp, _ := s.send(rt.method, rt.path, cred{bearer: adminToken}, rt.body); resp.StatusCode == http.StatusNotFound {
				t.Fatalf("%s %s is not routed", rt.method, rt.path)
			}
			for _, tc := range []struct {
				name string
				c    cred
				want int
			}{
				{"none", cred{}, http.StatusUnauthorized},
				{"wrong token", cred{bearer: "not-a-token"}, http.StatusUnauthorized},
				{"forged cookie", cred{cookie: forged}, http.StatusUnauthorized},
				{"wrong role", rt.wrongRole, http.StatusForbidden},
			} {
				resp, body := s.send(rt.method, rt.path, tc.c, rt.body)
				if resp.StatusCode != tc.want || resp.Header.Get("Content-Type") != "application/problem+json" {
					t.Errorf("%s: status %d %s, want %d problem+json\n%s", tc.name, resp.StatusCode,
						resp.Header.Get("Content-Type"), tc.want, body)
				}
			}
		})
	}
}

// rowIDs returns the ids of a report's rows.
func rowIDs(t *testing.T, body []byte) []string {
	t.Helper()
	var r report
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, body)
	}
	var ids []string
	for _, u := range r.Users {
		ids = append(ids, u.ID)
	}
	return ids
}

// TestManagerSeesOnlyTheirTeam reads every route that shows people as a
// manager (session) and as a team-bound token, and finds no one of
// another team, in the JSON, the CSV export and the websocket.
func TestManagerSeesOnlyTheirTeam(t *testing.T) {
	s, manager := securedServer(t)
	for _, tc := range []struct {
		name       string
		c          cred
		mine, them string
	}{
		{"manager session", cred{cookie: manager}, "Anna Snelling", "Boris East"},
		{"east token", cred{bearer: readToken}, "Boris East", "Anna Snelling"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.send("GET", "/v1/report?"+period(), tc.c, nil)
			if ids := rowIDs(t, body); resp.StatusCode != 200 || strings.Join(ids, ",") != tc.mine {
				t.Errorf("report rows: %d %v, want only %s", resp.StatusCode, ids, tc.mine)
			}
			for _, path := range []string{"/v1/transactions?" + period(), "/v1/transactions?format=csv&" + period(), "/v1/users"} {
				resp, body := s.send("GET", path, tc.c, nil)
				if resp.StatusCode != 200 || !strings.Contains(string(body), tc.mine) ||
					strings.Contains(string(body), tc.them) || strings.Contains(string(body), "pipedrive") {
					t.Errorf("%s: status %d, want %s and nobody else:\n%s", path, resp.StatusCode, tc.mine, body)
				}
			}
			if resp, _ := s.send("GET", "/v1/report?team=Nowhere&"+period(), tc.c, nil); resp.StatusCode != http.StatusForbidden {
				t.Errorf("another team's report: status %d, want 403", resp.StatusCode)
			}

			header := http.Header{}
			if tc.c.cookie != "" {
				header.Set("Cookie", tc.c.cookie)
			} else {
				header.Set("Authorization", "Bearer "+tc.c.bearer)
			}
			conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.url, "http")+"/v1/live", header)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			view := map[string]string{}
			for k, v := range mustQuery(period()) {
				view[k] = v[0]
			}
			conn.WriteJSON(map[string]any{"type": "subscribe", "view": view})
			var snap struct {
				Type   string          `json:"type"`
				Report json.RawMessage `json:"report"`
			}
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			if err := conn.ReadJSON(&snap); err != nil || snap.Type != "snapshot" {
				t.Fatalf("websocket: %v %s", err, snap.Type)
			}
			if ids := rowIDs(t, snap.Report); strings.Join(ids, ",") != tc.mine {
				t.Errorf("websocket snapshot rows %v, want only %s", ids, tc.mine)
			}
			view["team"] = "Nowhere"
			conn.WriteJSON(map[string]any{"type": "subscribe", "view": view})
			var refusal struct{ Type string }
			if err := conn.ReadJSON(&refusal); err != nil || refusal.Type != "error" {
				t.Errorf("subscribing to another team: %v %q, want an error frame", err, refusal.Type)
			}
		})
	}

	// A change refused is not audited as made.
	if resp, _ := s.send("PUT", "/v1/users/Nobody%20Refused", cred{bearer: adminToken}, []byte(`{"timezone":"Mars/Base"}`)); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("PUT with a bad time zone: %d, want 422", resp.StatusCode)
	}
	var entries struct {
		Items []struct{ Actor, Action, Subject string }
	}
	_, body := s.send("GET", "/v1/audit", cred{bearer: adminToken}, nil)
	json.Unmarshal(body, &entries)
	seen := map[string]bool{}
	for _, e := range entries.Items {
		seen[e.Actor+" "+e.Action+" "+e.Subject] = true
	}
	for _, want := range []string{managerName + " export team=Central", managerName + " live team=Central",
		managerName + " signin ", "east-reader view team=East", "admin_token user.put person=Anna Snelling"} {
		if !seen[want] {
			t.Errorf("audit log lacks %q; has %v", want, seen)
		}
	}
	if seen["admin_token user.put person=Nobody Refused"] {
		t.Error("the audit log records a refused PUT as a change made")
	}
}

func mustQuery(q string) url.Values { v, _ := url.ParseQuery(q); return v }

// TestSigninPage serves the form without inline script, refuses a wrong
// password, and never redirects off the site.
func TestSigninPage(t *testing.T) {
	s, _ := securedServer(t)
	resp, body := s.send("GET", "/signin", cred{}, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `action="/signin"`) || strings.Contains(string(body), "<script") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Errorf("GET /signin: %d, CSP %q\n%s", resp.StatusCode, resp.Header.Get("Content-Security-Policy"), body)
	}
	resp, err := noRedirect.PostForm(s.url+"/signin", url.Values{"name": {"root"}, "password": {"guess"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("wrong password: status %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/\r\nSet-Cookie: x=1"} {
		resp, err := noRedirect.PostForm(s.url+"/signin", url.Values{"name": {"root"}, "password": {rootPass}, "next": {next}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); loc != "/" {
			t.Errorf("next %q: Location %q, want /", next, loc)
		}
	}
	req, _ := http.NewRequest("POST", s.url+"/signin", strings.NewReader("name=root&password="+rootPass))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if resp, err := noRedirect.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site sign-in: %v %v, want 403", err, resp.StatusCode)
	}
}

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// rawRequest sends text as is and returns the status line and the rest.
func rawRequest(t *testing.T, s *server, text string) (string, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, text)
	br := bufio.NewReader(conn)
	status, _ := br.ReadString('\n')
	rest, _ := io.ReadAll(io.LimitReader(br, 1<<16))
	return strings.TrimSpace(status), string(rest)
}

// TestLogsHoldNoSecrets runs a server with every kind of secret set, signs
// in, sends hooks with wrong and right signatures and bad tokens, and
// finds none of the secrets in its JSON logs.
func TestLogsHoldNoSecrets(t *testing.T) {
	const hubspotSecret, salesforceSecret = "hubspot-secret-5f1e2d", "salesforce-secret-9a8b7c"
	s, session := securedServer(t, "CRMPULSE_LOG_FORMAT=json", "CRMPULSE_LOG_LEVEL=debug",
		"CRMPULSE_HUBSPOT_SECRET="+hubspotSecret, "CRMPULSE_SALESFORCE_SECRET="+salesforceSecret)
	body, err := os.ReadFile(repoFile("ingest", "hubspot", "testdata", "batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	now := fmt.Sprint(time.Now().UnixMilli())
	uri := s.url + "/v1/hooks/hubspot"
	for _, secret := range []string{"wrong", hubspotSecret} {
		req, _ := http.NewRequest("POST", uri, strings.NewReader(string(body)))
		req.Header.Set("X-HubSpot-Signature-v3", signV3(secret, "POST", uri, body, now))
		req.Header.Set("X-HubSpot-Request-Timestamp", now)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	req, _ := http.NewRequest("POST", s.url+"/v1/hooks/salesforce", strings.NewReader(`{"x":1}`))
	req.Header.Set("X-Signature-SHA256", "00")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	s.send("POST", "/v1/events", cred{bearer: adminToken + "x"}, []byte(`[]`))
	s.send("GET", "/v1/report", cred{bearer: readToken}, nil)
	noRedirect.PostForm(s.url+"/signin", url.Values{"name": {"root"}, "password": {rootPass + "x"}})
	s.stop()

	cookie := strings.TrimPrefix(session, "crmpulse_session=")
	logs := s.logs.String()
	for name, secret := range map[string]string{"hubspot secret": hubspotSecret, "salesforce secret": salesforceSecret,
		"admin token": adminToken, "read token": readToken, "ingest token": ingestOnly, "password": rootPass,
		"manager password": managerPass, "session cookie": cookie} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs hold the %s", name)
		}
	}
	if !strings.Contains(logs, `"component":"audit"`) {
		t.Error("no audit line in the logs")
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
}
