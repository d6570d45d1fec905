// Package actor finds who acted in events whose delivery did not say
// (Business Central always, HubSpot when sourceId is not a user), by reading
// the record back from the source's REST API. It is an ingest.Attributor:
// bounded by a timeout per delivery and a cache, and never fatal, since an
// event it cannot attribute is still appended, as unattributed.
//
// The record is read when the delivery arrives, not when it changed, so a
// record changed again in between names the later user. Deletes are not
// looked up: the record is gone.
package actor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest"
)

// ErrNotFound is returned by a Fetcher when the source has no such record
// (deleted since the change).
var ErrNotFound = errors.New("actor: record not found")

// Fetcher reads one record back from a source and returns the user who
// made the change e: "" when the record names none. It is called
// concurrently; ctx bounds it.
type Fetcher interface {
	User(ctx context.Context, resource string, e *crmpulse.Event) (string, error)
}

// Config bounds the lookups.
type Config struct {
	// Timeout bounds the lookups of one delivery together; a webhook's
	// sender waits for them (HubSpot gives up after five seconds).
	Timeout time.Duration
	// CacheTTL is how long a found user is reused for the same record and
	// action; CacheSize bounds the entries.
	CacheTTL  time.Duration
	CacheSize int
}

// Defaults for the zero fields of Config.
const (
	DefaultTimeout   = 2 * time.Second
	DefaultCacheTTL  = 10 * time.Minute
	DefaultCacheSize = 10000
)

// parallel bounds the lookups of one delivery in flight at once.
const parallel = 8

// Resolver attributes events with one Fetcher per source name. It is safe
// for concurrent use.
type Resolver struct {
	cfg      Config
	fetchers map[string]Fetcher
	logger   *slog.Logger
	lookups  *prometheus.CounterVec

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	user    string
	expires time.Time
}

var _ ingest.Attributor = (*Resolver)(nil)

// New returns a resolver using fetchers by source name, with its metric
// registered with reg.
func New(cfg Config, fetchers map[string]Fetcher, reg prometheus.Registerer, logger *slog.Logger) *Resolver {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	r := &Resolver{
		cfg: cfg, fetchers: fetchers, cache: map[string]cached{},
		logger: logger.With("component", "actor"),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmpulse_user_lookups_total",
			Help: "Lookups of the acting user at the source, by source and outcome (found, none, cached, not_found, failed).",
		}, []string{"source", "outcome"}),
	}
	reg.MustRegister(r.lookups)
	return r
}

// Attribute sets the user of each unattributed event of d that has a
// Lookup, within the configured timeout. Failures leave the event as it is
// and are counted.
func (r *Resolver) Attribute(ctx context.Context, source string, d *ingest.Delivery) {
	f, ok := r.fetchers[source]
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, l := range d.Lookups {
		e := &d.Events[l.Event]
		if e.User != "" || e.Action == crmpulse.Deleted {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			e.User = r.lookup(ctx, source, f, l.Resource, e)
		})
	}
	wg.Wait()
}

// lookup returns the user of e from the cache or the source; "" on failure.
func (r *Resolver) lookup(ctx context.Context, source string, f Fetcher, resource string, e *crmpulse.Event) string {
	key := source + "\x00" + resource + "\x00" + string(e.Action)
	if user, ok := r.cached(key); ok {
		r.lookups.WithLabelValues(source, "cached").Inc()
		return user
	}
	user, err := f.User(ctx, resource, e)
	switch {
	case errors.Is(err, ErrNotFound):
		r.lookups.WithLabelValues(source, "not_found").Inc()
		return ""
	case err != nil:
		r.lookups.WithLabelValues(source, "failed").Inc()
		r.logger.Debug("user lookup failed", "source", source, "err", err)
		return ""
	case user == "":
		r.lookups.WithLabelValues(source, "none").Inc()
	default:
		r.lookups.WithLabelValues(source, "found").Inc()
	}
	r.store(key, user)
	return user
}

func (r *Resolver) cached(key string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.cache[key]
	if !ok || time.Now().After(c.expires) {
		return "", false
	}
	return c.user, true
}

// store caches a user; a full cache is emptied, which costs lookups, not
// correctness.
func (r *Resolver) store(key, user string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cache) >= r.cfg.CacheSize {
		clear(r.cache)
	}
	r.cache[key] = cached{user: user, expires: time.Now().Add(r.cfg.CacheTTL)}
}

// getJSON GETs url with client and returns the body of a 200 answer, at
// most 1 MiB; 404 is ErrNotFound.
func getJSON(ctx context.Context, client *http.Client, url string, header http.Header) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, ErrNotFound
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s: %s", req.URL.Path, resp.Status)
	}
	return body, err
}

// Settings is the configuration block "user_lookup".
type Settings struct {
	Timeout         time.Duration         `koanf:"timeout"`
	CacheTTL        time.Duration         `koanf:"cache_ttl"`
	BusinessCentral BusinessCentralConfig `koanf:"businesscentral"`
	HubSpot         HubSpotConfig         `koanf:"hubspot"`
}

// Resolver returns the resolver of the sources the settings configure, or
// nil when they configure none.
func (s *Settings) Resolver(reg prometheus.Registerer, logger *slog.Logger) *Resolver {
	client := &http.Client{Timeout: 10 * time.Second}
	fetchers := map[string]Fetcher{}
	if s.BusinessCentral.BaseURL != "" {
		fetchers["businesscentral"] = NewBusinessCentral(s.BusinessCentral, client)
	}
	if s.HubSpot.Token != "" {
		fetchers["hubspot"] = NewHubSpot(s.HubSpot, client)
	}
	if len(fetchers) == 0 {
		return nil
	}
	return New(Config{Timeout: s.Timeout, CacheTTL: s.CacheTTL}, fetchers, reg, logger)
}

// Validate names the first wrong key of the block.
func (s *Settings) Validate() error {
	bc := s.BusinessCentral
	if bc.BaseURL != "" && bc.Token == "" && (bc.ClientID == "" || bc.TokenURL == "") {
		return errors.New("config user_lookup.businesscentral: set token, or client_id, client_secret and token_url")
	}
	if s.Timeout < 0 || s.CacheTTL < 0 {
		return errors.New("config user_lookup: timeout and cache_ttl must not be negative")
	}
	return nil
}
