package config

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"time"

	"github.com/crmpulse/crmpulse/auth"
)

// Security is the part of the configuration about who may do what, TLS
// and limits. Its keys sit at the top level of the file (squashed into
// Config).
type Security struct {
	Auth Auth `koanf:"auth"`
	// TLSCert and TLSKey are PEM files; with both set, crmpulse serves
	// HTTPS.
	TLSCert string `koanf:"tls_cert"`
	TLSKey  string `koanf:"tls_key"`
	// ACMEDomains, comma-separated, turns on certificates from an ACME CA
	// (Let's Encrypt unless ACMEDirectory says otherwise), answered by the
	// TLS-ALPN challenge on the listening port, so that port must be the
	// one the CA reaches (443).
	ACMEDomains   string `koanf:"acme_domains"`
	ACMEEmail     string `koanf:"acme_email"`
	ACMEDirectory string `koanf:"acme_directory"`
	// ACMECA is a PEM file of the certificates that crmpulse trusts for
	// its connection to the ACME directory instead of the system's: for a
	// private or test CA (Pebble) whose server certificate is its own.
	ACMECA string `koanf:"acme_ca"`
	Limits Limits `koanf:"limits"`
}

// Auth is how people and scripts prove who they are.
type Auth struct {
	// Users and Tokens are set in the file only.
	Users  []auth.User  `koanf:"users"`
	Tokens []auth.Token `koanf:"tokens"`
	// SessionKey signs session cookies (hex, 32 bytes or more); empty:
	// a key made once and kept in the data directory.
	SessionKey string          `koanf:"session_key"`
	SessionTTL string          `koanf:"session_ttl"`
	OIDC       auth.OIDCConfig `koanf:"oidc"`
}

// Limits bound what one client may ask.
type Limits struct {
	// HookRPS and HookBurst are the token bucket of each (hook source,
	// client address); 0 turns it off.
	HookRPS   float64 `koanf:"hook_rps"`
	HookBurst int     `koanf:"hook_burst"`
	// SigninPerMinute is how many sign-in attempts a client address may
	// make a minute.
	SigninPerMinute float64 `koanf:"signin_per_minute"`
}

func init() {
	maps.Copy(defaults, map[string]any{
		"auth.session_key":         "",
		"auth.session_ttl":         "12h",
		"auth.oidc.issuer":         "",
		"auth.oidc.client_id":      "",
		"auth.oidc.client_secret":  "",
		"auth.oidc.redirect_url":   "",
		"auth.oidc.role_claim":     "crmpulse_role",
		"auth.oidc.team_claim":     "crmpulse_team",
		"auth.oidc.default_role":   "",
		"tls_cert":                 "",
		"tls_key":                  "",
		"acme_domains":             "",
		"acme_email":               "",
		"acme_directory":           "",
		"acme_ca":                  "",
		"limits.hook_rps":          200.0,
		"limits.hook_burst":        400,
		"limits.signin_per_minute": 10.0,
	})
}

// SignInConfigured reports whether people can sign in (users or an OpenID
// provider); tokens alone do not count.
func (c *Config) SignInConfigured() bool {
	return len(c.Auth.Users) > 0 || c.Auth.OIDC.Issuer != ""
}

// SessionLifetime returns auth.session_ttl, validated by Validate.
func (c *Config) SessionLifetime() time.Duration {
	d, _ := time.ParseDuration(c.Auth.SessionTTL)
	return d
}

// TLS reports whether crmpulse serves HTTPS.
func (c *Config) TLS() bool { return c.TLSCert != "" || c.ACMEDomains != "" }

func (c *Config) validateSecurity() error {
	if err := auth.ValidateUsers(c.Auth.Users); err != nil {
		return err
	}
	if err := auth.ValidateTokens(c.Auth.Tokens); err != nil {
		return err
	}
	if err := c.Auth.OIDC.Validate(); err != nil {
		return err
	}
	if d, err := time.ParseDuration(c.Auth.SessionTTL); err != nil || d <= 0 {
		return fmt.Errorf("config auth.session_ttl: %q must be a positive duration such as 12h", c.Auth.SessionTTL)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("config tls_cert: tls_cert and tls_key are set together")
	}
	if c.TLSCert != "" && c.ACMEDomains != "" {
		return fmt.Errorf("config acme_domains: set either acme_domains or tls_cert, not both")
	}
	for _, f := range []struct{ key, path string }{{"tls_cert", c.TLSCert}, {"tls_key", c.TLSKey}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("config %s: %w", f.key, err)
		}
	}
	if c.ACMECA != "" {
		if c.ACMEDomains == "" {
			return fmt.Errorf("config acme_ca: set only with acme_domains")
		}
		if _, err := os.Stat(c.ACMECA); err != nil {
			return fmt.Errorf("config acme_ca: %w", err)
		}
	}
	if c.ACMEDirectory != "" {
		if u, err := url.Parse(c.ACMEDirectory); err != nil || u.Scheme != "https" {
			return fmt.Errorf("config acme_directory: %q must be an https URL", c.ACMEDirectory)
		}
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("config public_url: %q must be an absolute http or https URL", c.PublicURL)
		}
	}
	switch {
	case c.Limits.HookRPS < 0:
		return fmt.Errorf("config limits.hook_rps: must not be negative")
	case c.Limits.HookRPS > 0 && c.Limits.HookBurst < 1:
		return fmt.Errorf("config limits.hook_burst: must be at least 1")
	case c.Limits.SigninPerMinute <= 0:
		return fmt.Errorf("config limits.signin_per_minute: must be positive")
	}
	return nil
}
