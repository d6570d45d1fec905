package auth

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/crmpulse/crmpulse/auth/oidctest"
)

func TestSessionsRefuseTamperingAndExpiry(t *testing.T) {
	key := make([]byte, 32)
	s, err := NewSessions(key, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	value := s.Encode(Principal{Name: "ana", Role: RoleManager, Team: "Central", Scopes: RoleScopes(RoleManager)}, now)
	got, err := s.Decode(value, now)
	if err != nil || got.Name != "ana" || got.Team != "Central" || got.Has(ScopeAdmin) {
		t.Fatalf("got %+v, %v", got, err)
	}
	other, _ := NewSessions(append([]byte{1}, key[1:]...), time.Hour)
	for name, tc := range map[string]struct {
		s     *Sessions
		value string
		at    time.Time
	}{
		"expired":   {s, value, now.Add(2 * time.Hour)},
		"other key": {other, value, now},
		"tampered":  {s, "x" + value, now},
		"no dot":    {s, strings.ReplaceAll(value, ".", ""), now},
	} {
		if _, err := tc.s.Decode(tc.value, tc.at); err != ErrBadSession {
			t.Errorf("%s: got %v, want ErrBadSession", name, err)
		}
	}
	sealed := s.Seal("state", time.Minute, now)
	if v, err := s.Unseal(sealed, now); err != nil || v != "state" {
		t.Errorf("unseal: %q %v", v, err)
	}
	if _, err := s.Decode(sealed, now); err == nil {
		t.Error("a sealed value was accepted as a session")
	}
}

func TestPasswordsAndTokens(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	p := NewPasswords([]User{{Name: "ana", PasswordHash: string(hash), Role: RoleAdmin}})
	if got, err := p.Check("ana", "pw"); err != nil || !got.Has(ScopeIngest) {
		t.Errorf("right password: %+v %v", got, err)
	}
	for _, tc := range [][2]string{{"ana", "PW"}, {"bob", "pw"}, {"", ""}} {
		if _, err := p.Check(tc[0], tc[1]); err != ErrBadPassword {
			t.Errorf("%q/%q: got %v", tc[0], tc[1], err)
		}
	}
	t.Setenv("TEST_TOKEN", "from-env")
	tk := NewTokens([]Token{
		{Name: "hashed", TokenHash: HashToken("from-hash"), Scopes: []string{ScopeRead}, Team: "East"},
		{Name: "env", TokenEnv: "TEST_TOKEN", Scopes: []string{ScopeIngest}},
	}, "ingest", "admin")
	for token, want := range map[string]string{"from-hash": "hashed", "from-env": "env", "ingest": "ingest_token", "admin": "admin_token"} {
		if got, ok := tk.Lookup(token); !ok || got.Name != want {
			t.Errorf("token %q: got %q %v, want %q", token, got.Name, ok, want)
		}
	}
	if _, ok := tk.Lookup("from-has"); ok {
		t.Error("a wrong token was accepted")
	}
}

// authorize follows AuthURL to the provider and returns the code it
// sends back, checking that the state comes back too.
func authorize(t *testing.T, o *OIDC, state, nonce, verifier string) string {
	t.Helper()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(o.AuthURL(state, nonce, verifier))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound || back.Query().Get("state") != state {
		t.Fatalf("authorize: status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return back.Query().Get("code")
}

func TestOIDCSignsInThroughALocalProvider(t *testing.T) {
	p := oidctest.Start(t, "crmpulse")
	o, err := NewOIDC(context.Background(), OIDCConfig{Issuer: p.URL, ClientID: "crmpulse", ClientSecret: "s",
		RedirectURL: "http://127.0.0.1/signin/oidc/callback"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const verifier = "verifier-0123456789012345678901234567890123"
	u, _ := url.Parse(o.AuthURL("st", "n1", verifier))
	if q := u.Query(); q.Get("state") != "st" || q.Get("nonce") != "n1" || q.Get("code_challenge_method") != "S256" {
		t.Errorf("auth URL %s lacks state, nonce or PKCE", u)
	}
	code := authorize(t, o, "st", "n1", verifier)
	got, err := o.Exchange(context.Background(), code, verifier, "n1")
	if err != nil || got.Name != "ana@example.com" || got.Role != RoleManager || got.Team != "Central" {
		t.Fatalf("got %+v, %v", got, err)
	}
	if _, err := o.Exchange(context.Background(), code, verifier, "n1"); err == nil {
		t.Error("a code was redeemed twice")
	}
	if _, err := o.Exchange(context.Background(), authorize(t, o, "st", "n1", verifier), verifier, "another-nonce"); err == nil {
		t.Error("a token with another nonce was accepted")
	}
	if _, err := o.Exchange(context.Background(), authorize(t, o, "st", "n1", verifier), verifier+"x", "n1"); err == nil {
		t.Error("a code was redeemed with the wrong PKCE verifier")
	}
	if _, err := o.Exchange(context.Background(), "bad", verifier, "n1"); err == nil {
		t.Error("a refused code was accepted")
	}
	p.SignInAs(map[string]any{"sub": "u2", "email": "bo@example.com"})
	if _, err := o.Exchange(context.Background(), authorize(t, o, "st", "n1", verifier), verifier, "n1"); err != ErrNoRole {
		t.Errorf("no role claim: got %v, want ErrNoRole", err)
	}
}

// TestBearerTokenSchemeIgnoresCase checks that the scheme name matches in
// any case, as HTTP defines it, and that no other scheme gives a token.
func TestBearerTokenSchemeIgnoresCase(t *testing.T) {
	for _, tt := range []struct {
		header, token string
		ok            bool
	}{
		{"Bearer cp_abc", "cp_abc", true},
		{"bearer cp_abc", "cp_abc", true},
		{"BEARER  cp_abc", "cp_abc", true},
		{"Basic dXNlcjpwdw==", "", false},
		{"Bearercp_abc", "", false},
		{"", "", false},
	} {
		if token, ok := BearerToken(tt.header); token != tt.token || ok != tt.ok {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tt.header, token, ok, tt.token, tt.ok)
		}
	}
}
