package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/crypto/bcrypt"
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

// provider is a minimal OpenID Connect provider on 127.0.0.1: discovery,
// JWKS, and a token endpoint that signs an ID token for the code "good".
type provider struct {
	url   string
	key   *rsa.PrivateKey
	nonce string
	role  string
}

func startProvider(t *testing.T) *provider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &provider{url: "http://" + ln.Addr().String(), key: key, role: RoleManager}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": p.url, "authorization_endpoint": p.url + "/authorize", "token_endpoint": p.url + "/token",
			"jwks_uri": p.url + "/jwks", "id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("code") != "good" || r.FormValue("code_verifier") == "" {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
			(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
		claims := map[string]any{"iss": p.url, "sub": "u1", "aud": "crmpulse", "nonce": p.nonce,
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(),
			"email": "ana@example.com", "crmpulse_role": p.role, "crmpulse_team": "Central"}
		idt, _ := jwt.Signed(signer).Claims(claims).Serialize()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "id_token": idt, "expires_in": 60})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

func TestOIDCSignsInThroughALocalProvider(t *testing.T) {
	p := startProvider(t)
	o, err := NewOIDC(context.Background(), OIDCConfig{Issuer: p.url, ClientID: "crmpulse", ClientSecret: "s",
		RedirectURL: "http://127.0.0.1/signin/oidc/callback"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(o.AuthURL("st", "n1", "verifier-0123456789012345678901234567890123"))
	if q := u.Query(); q.Get("state") != "st" || q.Get("nonce") != "n1" || q.Get("code_challenge_method") != "S256" {
		t.Errorf("auth URL %s lacks state, nonce or PKCE", u)
	}
	p.nonce = "n1"
	got, err := o.Exchange(context.Background(), "good", "verifier-0123456789012345678901234567890123", "n1")
	if err != nil || got.Name != "ana@example.com" || got.Role != RoleManager || got.Team != "Central" {
		t.Fatalf("got %+v, %v", got, err)
	}
	if _, err := o.Exchange(context.Background(), "good", "v", "another-nonce"); err == nil {
		t.Error("a token with another nonce was accepted")
	}
	if _, err := o.Exchange(context.Background(), "bad", "v", "n1"); err == nil {
		t.Error("a refused code was accepted")
	}
	p.role = ""
	if _, err := o.Exchange(context.Background(), "good", "v", "n1"); err != ErrNoRole {
		t.Errorf("no role claim: got %v, want ErrNoRole", err)
	}
}
