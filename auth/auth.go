// Package auth decides who a request comes from: a person signed in with a
// password or through an OpenID Connect provider, or a script holding an
// API token. It knows roles and scopes; what each may see is the web
// layer's business.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Roles of people.
const (
	RoleAdmin   = "admin"
	RoleManager = "manager"
	RoleViewer  = "viewer"
)

// Scopes of tokens and roles.
const (
	ScopeRead   = "read"
	ScopeIngest = "ingest"
	ScopeAdmin  = "admin"
)

// Principal is who a request acts for.
type Principal struct {
	// Name is the user's or the token's name; never a secret.
	Name string
	// Kind is "session", "token" or "open" (served without sign-in).
	Kind string
	// Role is the person's role; tokens have none.
	Role string
	// Team limits what the principal sees, when not empty.
	Team   string
	Scopes []string
}

// Has reports whether p holds scope; the admin scope holds every other.
func (p *Principal) Has(scope string) bool {
	return slices.Contains(p.Scopes, scope) || slices.Contains(p.Scopes, ScopeAdmin)
}

// RoleScopes returns the scopes of a role.
func RoleScopes(role string) []string {
	if role == RoleAdmin {
		return []string{ScopeAdmin, ScopeRead, ScopeIngest}
	}
	return []string{ScopeRead}
}

// User is a person who signs in with a password.
type User struct {
	Name         string `koanf:"name"`
	PasswordHash string `koanf:"password_hash"`
	Role         string `koanf:"role"`
	Team         string `koanf:"team"`
}

// Token is an API token. Its secret is given either as the hex SHA-256 of
// the token (optionally prefixed "sha256:") or as the name of an
// environment variable that holds the token itself.
type Token struct {
	Name      string   `koanf:"name"`
	TokenHash string   `koanf:"token_hash"`
	TokenEnv  string   `koanf:"token_env"`
	Scopes    []string `koanf:"scopes"`
	Team      string   `koanf:"team"`
}

// ValidateUsers checks the configured users; errors name the key.
func ValidateUsers(users []User) error {
	seen := map[string]bool{}
	for i, u := range users {
		key := fmt.Sprintf("config auth.users[%d]", i)
		switch {
		case u.Name == "":
			return fmt.Errorf("%s.name: must be set", key)
		case seen[u.Name]:
			return fmt.Errorf("%s.name: %q appears twice", key, u.Name)
		case u.Role != RoleAdmin && u.Role != RoleManager && u.Role != RoleViewer:
			return fmt.Errorf("%s.role: %q must be admin, manager or viewer", key, u.Role)
		}
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			return fmt.Errorf("%s.password_hash: not a bcrypt hash (make one with `htpasswd -nbBC 12 '' PASSWORD | cut -c2-`)", key)
		}
		seen[u.Name] = true
	}
	return nil
}

// ValidateTokens checks the configured tokens; errors name the key.
func ValidateTokens(tokens []Token) error {
	for i, t := range tokens {
		key := fmt.Sprintf("config auth.tokens[%d]", i)
		if t.Name == "" {
			return fmt.Errorf("%s.name: must be set", key)
		}
		if (t.TokenHash == "") == (t.TokenEnv == "") {
			return fmt.Errorf("%s: set exactly one of token_hash and token_env", key)
		}
		if t.TokenHash != "" {
			if b, err := hex.DecodeString(strings.TrimPrefix(t.TokenHash, "sha256:")); err != nil || len(b) != sha256.Size {
				return fmt.Errorf("%s.token_hash: must be the hex SHA-256 of the token", key)
			}
		}
		if t.TokenEnv != "" && os.Getenv(t.TokenEnv) == "" {
			return fmt.Errorf("%s.token_env: the variable %s is not set", key, t.TokenEnv)
		}
		if len(t.Scopes) == 0 {
			return fmt.Errorf("%s.scopes: name at least one of read, ingest, admin", key)
		}
		for _, s := range t.Scopes {
			if s != ScopeRead && s != ScopeIngest && s != ScopeAdmin {
				return fmt.Errorf("%s.scopes: %q must be read, ingest or admin", key, s)
			}
		}
	}
	return nil
}

// ErrBadPassword is returned for an unknown user or a wrong password; the
// two are not told apart.
var ErrBadPassword = errors.New("auth: unknown user or wrong password")

// Passwords checks configured users' passwords.
type Passwords struct {
	users map[string]User
	// dummy is compared against when the user is unknown, so that the
	// answer takes as long either way.
	dummy []byte
}

// NewPasswords returns a checker of users' passwords.
func NewPasswords(users []User) *Passwords {
	p := &Passwords{users: map[string]User{}}
	for _, u := range users {
		p.users[u.Name] = u
	}
	p.dummy, _ = bcrypt.GenerateFromPassword([]byte("crmpulse-dummy"), bcrypt.DefaultCost)
	return p
}

// Len returns how many users may sign in with a password.
func (p *Passwords) Len() int { return len(p.users) }

// Check returns the principal of name when password is theirs.
func (p *Passwords) Check(name, password string) (Principal, error) {
	u, ok := p.users[name]
	hash := []byte(u.PasswordHash)
	if !ok {
		hash = p.dummy
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || !ok {
		return Principal{}, ErrBadPassword
	}
	return Principal{Name: u.Name, Kind: "session", Role: u.Role, Team: u.Team, Scopes: RoleScopes(u.Role)}, nil
}

// Tokens recognises API tokens. Its methods may be called concurrently.
type Tokens struct {
	byHash map[[sha256.Size]byte]Principal
}

// NewTokens returns the configured tokens, with the fixed ingest and admin
// tokens of the environment (either may be empty).
func NewTokens(tokens []Token, ingestToken, adminToken string) *Tokens {
	t := &Tokens{byHash: map[[sha256.Size]byte]Principal{}}
	for _, tk := range tokens {
		var sum [sha256.Size]byte
		if tk.TokenEnv != "" {
			sum = sha256.Sum256([]byte(os.Getenv(tk.TokenEnv)))
		} else {
			b, _ := hex.DecodeString(strings.TrimPrefix(tk.TokenHash, "sha256:"))
			copy(sum[:], b)
		}
		t.byHash[sum] = Principal{Name: tk.Name, Kind: "token", Team: tk.Team, Scopes: tk.Scopes}
	}
	if ingestToken != "" {
		t.byHash[sha256.Sum256([]byte(ingestToken))] = Principal{Name: "ingest_token", Kind: "token", Scopes: []string{ScopeIngest}}
	}
	if adminToken != "" {
		t.byHash[sha256.Sum256([]byte(adminToken))] = Principal{Name: "admin_token", Kind: "token", Scopes: []string{ScopeAdmin}}
	}
	return t
}

// Len returns how many tokens are known.
func (t *Tokens) Len() int { return len(t.byHash) }

// Lookup returns the principal of a presented token. Comparing hashes of
// the token rather than the token itself keeps the map lookup from
// leaking the secret through timing.
func (t *Tokens) Lookup(token string) (Principal, bool) {
	if token == "" {
		return Principal{}, false
	}
	sum := sha256.Sum256([]byte(token))
	for h, p := range t.byHash {
		if subtle.ConstantTimeCompare(h[:], sum[:]) == 1 {
			return p, true
		}
	}
	return Principal{}, false
}

// BearerToken returns the token of an Authorization header value of the
// Bearer scheme, whose name matches in any case (RFC 9110, 11.1); ok is
// false for any other scheme or none.
func BearerToken(header string) (token string, ok bool) {
	scheme, token, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimLeft(token, " "), true
}

// HashToken returns the token_hash of a token, for the configuration file.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}
