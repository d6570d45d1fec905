package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse/auth/oidctest"
)

// freeAddr returns a loopback address with a port free a moment ago: the
// provider must know the server's callback before the server starts.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestOIDCSignInThroughTheBinary signs in through a local OpenID Connect
// provider with a browser-like client that keeps cookies, following
// /signin/oidc to the provider and back to the callback, and checks that
// the session carries the role and team of the provider's claims: a
// manager of Central sees Central only, an administrator everyone.
func TestOIDCSignInThroughTheBinary(t *testing.T) {
	provider := oidctest.Start(t, "crmpulse")
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`
auth:
  oidc:
    issuer: %s
    client_id: crmpulse
    client_secret: oidc-client-secret
    redirect_url: http://%s/signin/oidc/callback
`, provider.URL, addr)
	path := filepath.Join(t.TempDir(), "crmpulse.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServerWith(t, "", []string{"--config", path, "--addr", addr}, "CRMPULSE_ADMIN_TOKEN="+adminToken)
	seedTeams(t, s)

	for _, tc := range []struct {
		name   string
		claims map[string]any
		want   []string
	}{
		{"manager of Central", map[string]any{"sub": "m1", "email": "dustin@example.com",
			"crmpulse_role": "manager", "crmpulse_team": "Central"}, []string{"Anna Snelling"}},
		{"administrator", map[string]any{"sub": "a1", "preferred_username": "root",
			"crmpulse_role": "admin"}, []string{"Anna Snelling", "Boris East"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			provider.SignInAs(tc.claims)
			jar, _ := cookiejar.New(nil)
			browser := &http.Client{Jar: jar, Timeout: 30 * time.Second}
			resp, err := browser.Get(s.url + "/signin/oidc?next=" + url.QueryEscape("/?period=today"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" ||
				resp.Request.URL.Query().Get("period") != "today" {
				t.Fatalf("the flow ended at %s with status %d, want the page at /?period=today",
					resp.Request.URL, resp.StatusCode)
			}
			resp, err = browser.Get(s.url + "/v1/report?" + period())
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("report with the provider's session: status %d\n%s", resp.StatusCode, body)
			}
			ids := rowIDs(t, body)
			slices.Sort(ids)
			if !slices.Equal(ids, tc.want) {
				t.Errorf("report rows %v, want %v", ids, tc.want)
			}
		})
	}

	// A callback that did not start here is refused.
	resp, err := http.Get(s.url + "/signin/oidc/callback?code=x&state=y")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a callback without the sign-in's cookie: status %d, want 400", resp.StatusCode)
	}
}

// seedTeams puts Anna Snelling in Central and Boris East in East, each
// with an event an hour ago, and waits until they are applied.
func seedTeams(t *testing.T, s *server) {
	t.Helper()
	for _, p := range []map[string]any{
		{"id": "Anna Snelling", "name": "Anna Snelling", "team": "Central"},
		{"id": "Boris East", "name": "Boris East", "team": "East"},
	} {
		if code := s.do("PUT", "/v1/users/"+url.PathEscape(p["id"].(string)), adminToken, mustJSON(t, p), nil); code != http.StatusOK {
			t.Fatalf("PUT person: status %d", code)
		}
	}
	at := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	events := []map[string]any{
		{"id": "oidc-1", "user": "Anna Snelling", "entity": "lead", "record": "L-1", "action": "created", "at": at},
		{"id": "oidc-2", "user": "Boris East", "entity": "lead", "record": "L-2", "action": "created", "at": at},
	}
	if code := s.do("POST", "/v1/events", adminToken, mustJSON(t, events), nil); code != http.StatusAccepted {
		t.Fatalf("POST events: status %d", code)
	}
	s.waitReady()
}
