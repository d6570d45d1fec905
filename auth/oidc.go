package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OIDCConfig is how crmpulse signs people in through an OpenID Connect
// provider (the authorization code flow with PKCE).
type OIDCConfig struct {
	Issuer       string `koanf:"issuer"`
	ClientID     string `koanf:"client_id"`
	ClientSecret string `koanf:"client_secret"`
	// RedirectURL is crmpulse's /signin/oidc/callback as the provider
	// knows it.
	RedirectURL string `koanf:"redirect_url"`
	// RoleClaim and TeamClaim name the ID token's claims that carry the
	// person's role and team.
	RoleClaim string `koanf:"role_claim"`
	TeamClaim string `koanf:"team_claim"`
	// DefaultRole is the role of a person whose token has no role claim;
	// empty refuses them.
	DefaultRole string `koanf:"default_role"`
}

// Validate checks the settings; errors name the key.
func (c *OIDCConfig) Validate() error {
	if c.Issuer == "" {
		return nil
	}
	// In a fixed order, so that the same file always names the same key.
	for _, kv := range [][2]string{{"client_id", c.ClientID}, {"redirect_url", c.RedirectURL}} {
		if kv[1] == "" {
			return fmt.Errorf("config auth.oidc.%s: must be set with auth.oidc.issuer", kv[0])
		}
	}
	switch c.DefaultRole {
	case "", RoleAdmin, RoleManager, RoleViewer:
	default:
		return fmt.Errorf("config auth.oidc.default_role: %q must be admin, manager, viewer or empty", c.DefaultRole)
	}
	return nil
}

// OIDC signs people in through a provider. Its methods may be called
// concurrently.
type OIDC struct {
	cfg      OIDCConfig
	client   *http.Client
	verifier *oidc.IDTokenVerifier
	oauth    oauth2.Config
}

// NewOIDC discovers the provider. client makes every call to it (nil: a
// client with a 10-second timeout).
func NewOIDC(ctx context.Context, cfg OIDCConfig, client *http.Client) (*OIDC, error) {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, client), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("config auth.oidc.issuer: discover %s: %w", cfg.Issuer, err)
	}
	return &OIDC{
		cfg: cfg, client: client,
		verifier: p.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL,
			Endpoint: p.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "email", "profile"}},
	}, nil
}

// AuthURL returns where to send the browser, with state, nonce and the
// PKCE verifier that the callback checks.
func (o *OIDC) AuthURL(state, nonce, verifier string) string {
	return o.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
}

// ErrNoRole is returned for a person the provider vouches for but whose
// token names no role, when no default role is configured.
var ErrNoRole = errors.New("auth: the provider's token names no crmpulse role")

// Exchange trades the callback's code for an ID token, checks it, and
// returns the person it names.
func (o *OIDC) Exchange(ctx context.Context, code, verifier, nonce string) (Principal, error) {
	ctx = oidc.ClientContext(ctx, o.client)
	tok, err := o.oauth.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Principal{}, fmt.Errorf("exchange code: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		return Principal{}, errors.New("the provider sent no id_token")
	}
	idt, err := o.verifier.Verify(ctx, raw)
	if err != nil {
		return Principal{}, fmt.Errorf("verify id token: %w", err)
	}
	if idt.Nonce != nonce {
		return Principal{}, errors.New("the id token's nonce does not match")
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return Principal{}, fmt.Errorf("read claims: %w", err)
	}
	str := func(name string) string { s, _ := claims[name].(string); return s }
	name := idt.Subject
	for _, c := range []string{"preferred_username", "email"} {
		if v := str(c); v != "" {
			name = v
			break
		}
	}
	role := str(or(o.cfg.RoleClaim, "crmpulse_role"))
	if role == "" {
		role = o.cfg.DefaultRole
	}
	if role != RoleAdmin && role != RoleManager && role != RoleViewer {
		return Principal{}, ErrNoRole
	}
	return Principal{Name: name, Kind: "session", Role: role, Team: str(or(o.cfg.TeamClaim, "crmpulse_team")),
		Scopes: RoleScopes(role)}, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
