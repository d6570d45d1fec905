package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "crmpulse.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSecurityKeysLoad(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	path := writeConfig(t, `
auth:
  users:
    - {name: ana, password_hash: "`+string(hash)+`", role: manager, team: Central}
  tokens:
    - {name: bi, token_hash: "sha256:`+strings.Repeat("ab", 32)+`", scopes: [read], team: East}
`)
	t.Setenv("CRMPULSE_LIMITS_HOOK_RPS", "5")
	t.Setenv("CRMPULSE_AUTH_SESSION_TTL", "1h")
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Auth.Users[0]; got.Name != "ana" || got.Role != "manager" || got.Team != "Central" {
		t.Errorf("user: got %+v", got)
	}
	if got := c.Auth.Tokens[0]; got.Name != "bi" || got.Team != "East" || len(got.Scopes) != 1 {
		t.Errorf("token: got %+v", got)
	}
	if c.Limits.HookRPS != 5 || c.SessionLifetime().Hours() != 1 || !c.SignInConfigured() {
		t.Errorf("got hook_rps %v, session %v, sign-in %v", c.Limits.HookRPS, c.SessionLifetime(), c.SignInConfigured())
	}
}

func TestSecurityErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ file, env, want string }{
		{"auth: {users: [{name: a, password_hash: x, role: admin}]}", "", "auth.users[0].password_hash"},
		{"auth: {users: [{name: a, password_hash: x, role: boss}]}", "", "auth.users[0].role"},
		{"auth: {tokens: [{name: t, scopes: [read]}]}", "", "auth.tokens[0]"},
		{"auth: {tokens: [{name: t, token_hash: abc, scopes: [read]}]}", "", "auth.tokens[0].token_hash"},
		{"auth: {tokens: [{name: t, token_env: CRMPULSE_NOT_SET_X, scopes: [read]}]}", "", "auth.tokens[0].token_env"},
		{"auth: {oidc: {issuer: https://idp.example}}", "", "auth.oidc.client_id"},
		{"tls_cert: /nonexistent.pem\ntls_key: /nonexistent.key", "", "tls_cert"},
		{"tls_cert: /x.pem", "", "tls_cert"},
		{"", "CRMPULSE_AUTH_SESSION_TTL=soon", "auth.session_ttl"},
		{"", "CRMPULSE_LIMITS_SIGNIN_PER_MINUTE=0", "limits.signin_per_minute"},
		{"", "CRMPULSE_PUBLIC_URL=example.com", "public_url"},
		{"acme_ca: /nonexistent.pem", "", "acme_ca"},
		{"acme_domains: a.example\nacme_ca: /nonexistent.pem", "", "acme_ca"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if k, v, ok := strings.Cut(tc.env, "="); ok {
				t.Setenv(k, v)
			}
			_, err := Load(writeConfig(t, tc.file), nil)
			if err == nil || !strings.Contains(err.Error(), "config "+tc.want) {
				t.Errorf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
