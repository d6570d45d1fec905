// Package bench measures crmpulse the way a user runs it: it builds the real
// binary, starts it on a temporary data directory on loopback, drives it
// over HTTP and websockets, and sets each figure beside its target and
// beside what PostgreSQL and the bare parts (JetStream, Badger) do with the
// same events on the same machine. It is a program, not a test: it asserts
// no timing, it reports.
package bench

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// Config sizes a run. Every field has an environment variable, so that
// `make bench BENCH_SHORT=1` and `make bench BENCH_EVENTS=...` work alike.
type Config struct {
	// Short shrinks every size for a run of a couple of minutes (BENCH_SHORT=1).
	Short bool
	// Work is where the binary, data directories, CSV and profiles go.
	Work string
	// Keep leaves Work in place after the run (BENCH_KEEP=1).
	Keep bool

	// Ingest is how long figure 1 sends HubSpot batches (BENCH_DURATION).
	Ingest time.Duration
	// Senders is how many HubSpot senders run at once (BENCH_SENDERS).
	Senders int
	// LiveRate is the events/s of figure 2 (BENCH_LIVE_RATE).
	LiveRate int
	// LiveClients is the websocket clients of figure 2 (BENCH_CLIENTS).
	LiveClients int
	// LiveFor is how long figures 2 and 5 measure (BENCH_LIVE_DURATION).
	LiveFor time.Duration
	// FanoutClients is the websocket clients of figure 5 (BENCH_FANOUT_CLIENTS).
	FanoutClients int
	// FanoutRate is the deltas/s of figure 5 (BENCH_FANOUT_RATE).
	FanoutRate int
	// Events is how many events figure 3 stores (BENCH_EVENTS).
	Events int
	// People is the directory size of figure 3 (BENCH_PEOPLE).
	People int
	// QueryRate and QueryFor drive figure 3 open-loop (BENCH_QPS, BENCH_QUERY_DURATION).
	QueryRate int
	QueryFor  time.Duration
	// Rows is the CSV rows of figure 6 (BENCH_ROWS).
	Rows int
	// LoadLimit bounds each bulk load (figure 3's events, figure 6's import)
	// so that a slow server still gives a bounded run (BENCH_LOAD_LIMIT).
	LoadLimit time.Duration
	// Profile takes a CPU profile of the server during each figure (BENCH_PROFILE, default on).
	Profile bool
	// Postgres runs the PostgreSQL peer (BENCH_POSTGRES, default on).
	Postgres bool
	// Only restricts the run to a comma-separated list of parts (BENCH_ONLY):
	// ceilings, ingest, live, fanout, report, import, postgres.
	Only string
}

// ConfigFromEnv returns the sizes of the targets, or the short ones
// under BENCH_SHORT=1, overridden by any BENCH_* variable that is set.
func ConfigFromEnv() (Config, error) {
	c := Config{
		Ingest: time.Minute, Senders: 8,
		LiveRate: 20000, LiveClients: 1000, LiveFor: 20 * time.Second,
		FanoutClients: 10000, FanoutRate: 20,
		Events: 10_000_000, People: 1000, QueryRate: 100, QueryFor: 30 * time.Second,
		Rows: 10_000_000, LoadLimit: 6 * time.Minute, Profile: true, Postgres: true,
	}
	p := envParser{}
	c.Short = p.boolean("BENCH_SHORT", false)
	if c.Short {
		c.Ingest, c.LiveFor, c.QueryFor = 10*time.Second, 5*time.Second, 10*time.Second
		c.FanoutClients, c.Events, c.Rows, c.LoadLimit = 2000, 300_000, 300_000, 2*time.Minute
	}
	c.Work = os.Getenv("BENCH_WORK")
	c.Keep = p.boolean("BENCH_KEEP", false)
	c.Ingest = p.duration("BENCH_DURATION", c.Ingest)
	c.Senders = p.integer("BENCH_SENDERS", c.Senders)
	c.LiveRate = p.integer("BENCH_LIVE_RATE", c.LiveRate)
	c.LiveClients = p.integer("BENCH_CLIENTS", c.LiveClients)
	c.LiveFor = p.duration("BENCH_LIVE_DURATION", c.LiveFor)
	c.FanoutClients = p.integer("BENCH_FANOUT_CLIENTS", c.FanoutClients)
	c.FanoutRate = p.integer("BENCH_FANOUT_RATE", c.FanoutRate)
	c.Events = p.integer("BENCH_EVENTS", c.Events)
	c.People = p.integer("BENCH_PEOPLE", c.People)
	c.QueryRate = p.integer("BENCH_QPS", c.QueryRate)
	c.QueryFor = p.duration("BENCH_QUERY_DURATION", c.QueryFor)
	c.Rows = p.integer("BENCH_ROWS", c.Rows)
	c.LoadLimit = p.duration("BENCH_LOAD_LIMIT", c.LoadLimit)
	c.Profile = p.boolean("BENCH_PROFILE", c.Profile)
	c.Postgres = p.boolean("BENCH_POSTGRES", c.Postgres)
	c.Only = os.Getenv("BENCH_ONLY")
	return c, p.err
}

// envParser reads BENCH_* variables, keeping the first error.
type envParser struct{ err error }

func (p *envParser) fail(name, value, want string) {
	if p.err == nil {
		p.err = fmt.Errorf("%s=%q: want %s", name, value, want)
	}
}

func (p *envParser) integer(name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		p.fail(name, v, "a positive whole number")
		return def
	}
	return n
}

// duration accepts a Go duration ("90s", "2m") or a number of seconds.
func (p *envParser) duration(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		p.fail(name, v, "a duration such as 60s")
		return def
	}
	return d
}

func (p *envParser) boolean(name string, def bool) bool {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(name, v, "1 or 0")
		return def
	}
	return b
}
