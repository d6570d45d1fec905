package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/aggregate"
	"github.com/crmpulse/crmpulse/audit"
	"github.com/crmpulse/crmpulse/auth"
	"github.com/crmpulse/crmpulse/config"
	"github.com/crmpulse/crmpulse/web"
)

// checkExposure refuses to listen beyond the loopback address with no
// way to tell an administrator from anyone else.
func checkExposure(cfg *config.Config) error {
	if config.IsLoopback(cfg.Addr) || cfg.AdminToken != "" || cfg.SignInConfigured() {
		return nil
	}
	for _, t := range cfg.Auth.Tokens {
		for _, s := range t.Scopes {
			if s == auth.ScopeAdmin {
				return nil
			}
		}
	}
	return fmt.Errorf("config addr: %s is not a loopback address; configure sign-in (auth.users or auth.oidc) or set CRMPULSE_ADMIN_TOKEN before exposing crmpulse", cfg.Addr)
}

// openMode returns the web layer's open flags: every route open on a
// loopback address with nothing configured; reads open on a loopback
// address while nobody can sign in.
func openMode(cfg *config.Config) (open, openReads bool) {
	loopback := config.IsLoopback(cfg.Addr)
	openReads = loopback && !cfg.SignInConfigured()
	open = openReads && cfg.IngestToken == "" && cfg.AdminToken == "" && len(cfg.Auth.Tokens) == 0
	return open, openReads
}

// security builds the web layer's sign-in, tokens, audit log and limits.
func security(ctx context.Context, cfg *config.Config, db *badger.DB, logger *slog.Logger) (web.Security, error) {
	sec := web.Security{
		Tokens:    auth.NewTokens(cfg.Auth.Tokens, cfg.IngestToken, cfg.AdminToken),
		Audit:     audit.Open(db, logger),
		PublicURL: cfg.PublicURL,
		Secure:    cfg.TLS() || strings.HasPrefix(cfg.PublicURL, "https:"),
		HookRPS:   cfg.Limits.HookRPS, HookBurst: cfg.Limits.HookBurst, SigninPerMinute: cfg.Limits.SigninPerMinute,
	}
	if len(cfg.Auth.Users) > 0 {
		sec.Passwords = auth.NewPasswords(cfg.Auth.Users)
	}
	key, err := auth.LoadKey(cfg.Auth.SessionKey, cfg.Data)
	if err != nil {
		return sec, err
	}
	if sec.Sessions, err = auth.NewSessions(key, cfg.SessionLifetime()); err != nil {
		return sec, err
	}
	if cfg.Auth.OIDC.Issuer != "" {
		if sec.OIDC, err = auth.NewOIDC(ctx, cfg.Auth.OIDC, nil); err != nil {
			return sec, err
		}
	}
	return sec, nil
}

// logAccess says at start who may do what, naming no secret.
func logAccess(cfg *config.Config, logger *slog.Logger) {
	open, openReads := openMode(cfg)
	switch {
	case open:
		logger.Warn("no sign-in and no tokens configured: every route is open to local clients only")
	case openReads:
		logger.Info("no sign-in configured: reads are served without sign-in on the loopback address")
	default:
		logger.Info("sign-in required", "users", len(cfg.Auth.Users), "oidc", cfg.Auth.OIDC.Issuer != "",
			"tokens", len(cfg.Auth.Tokens))
	}
}

// serveHTTP serves on ln, over TLS when certificate files or ACME domains
// are configured.
func serveHTTP(srv *http.Server, ln net.Listener, cfg *config.Config) error {
	switch {
	case cfg.TLSCert != "":
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		return srv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
	case cfg.ACMEDomains != "":
		m, err := acmeManager(cfg)
		if err != nil {
			return err
		}
		srv.TLSConfig = m.TLSConfig()
		srv.TLSConfig.MinVersion = tls.VersionTLS12
		return srv.ServeTLS(ln, "", "")
	}
	return srv.Serve(ln)
}

// acmeManager returns the certificate manager for acme_domains. It answers
// the TLS-ALPN-01 challenge on the listening port and keeps certificates in
// DATA/acme; it talks to acme_directory (Let's Encrypt when empty),
// trusting acme_ca's certificates for that connection when set.
func acmeManager(cfg *config.Config) (*autocert.Manager, error) {
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(filepath.Join(cfg.Data, "acme")),
		HostPolicy: autocert.HostWhitelist(strings.Split(cfg.ACMEDomains, ",")...),
		Email:      cfg.ACMEEmail,
		Client:     &acme.Client{DirectoryURL: cfg.ACMEDirectory},
	}
	if cfg.ACMEDirectory == "" {
		m.Client.DirectoryURL = autocert.DefaultACMEDirectory
	}
	if cfg.ACMECA != "" {
		pem, err := os.ReadFile(cfg.ACMECA)
		if err != nil {
			return nil, fmt.Errorf("config acme_ca: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("config acme_ca: %s holds no PEM certificate", cfg.ACMECA)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		m.Client.HTTPClient = &http.Client{Transport: tr, Timeout: time.Minute}
	}
	return m, nil
}

// pipelineMetrics are the figures of the log and the workers: how far
// each partition's worker trails the log's end, and how long an accepted
// event takes to be applied.
type pipelineMetrics struct {
	applyLatency prometheus.Histogram
}

func registerPipeline(ctx context.Context, reg *prometheus.Registry, evlog endedLog, store *aggregate.Store) *pipelineMetrics {
	m := &pipelineMetrics{applyLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "crmpulse_apply_latency_seconds", Help: "Time from an event's acceptance to its application to the state.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})}
	reg.MustRegister(m.applyLatency, &lagCollector{ctx: ctx, evlog: evlog, store: store})
	return m
}

// applied observes the latency of events the workers just applied.
func (m *pipelineMetrics) applied(events []crmpulse.Event) {
	now := time.Now()
	for i := range events {
		if !events[i].Received.IsZero() {
			m.applyLatency.Observe(now.Sub(events[i].Received).Seconds())
		}
	}
}

var lagDesc = prometheus.NewDesc("crmpulse_log_lag", "Records on the log not yet applied by the worker, per partition.",
	[]string{"partition"}, nil)

// lagCollector reads the lag when scraped.
type lagCollector struct {
	ctx   context.Context
	evlog endedLog
	store *aggregate.Store
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
	defer cancel()
	end, err := c.evlog.End(ctx)
	if err != nil {
		return
	}
	for part, last := range end {
		lag := max(last+1-c.store.Resume(part), 0)
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(lag), fmt.Sprint(part))
	}
}
