package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNoPostgres is returned when PostgreSQL is not installed and cannot be.
var ErrNoPostgres = errors.New("postgresql is not installed (apt-get install postgresql, as root)")

// Postgres is a throwaway PostgreSQL cluster on a temporary directory and a
// loopback port, set up as a competent user would for this load: a larger
// shared_buffers and max_wal_size, and synchronous_commit=off, which, like
// crmpulse's default durability, survives a crash of the process but may
// lose the last moments to a crash of the machine.
type Postgres struct {
	Pool *pgxpool.Pool
	URL  string
	bin  string
	dir  string
}

// StartPostgres installs PostgreSQL when it is missing and the program runs
// as root, then starts a cluster under work.
func StartPostgres(ctx context.Context, work string) (*Postgres, error) {
	bin, err := postgresBin()
	if errors.Is(err, ErrNoPostgres) && os.Geteuid() == 0 {
		fmt.Fprintln(os.Stderr, "bench: installing postgresql with apt-get")
		install := exec.CommandContext(ctx, "sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql")
		install.Stdout, install.Stderr = os.Stderr, os.Stderr
		if install.Run() == nil {
			bin, err = postgresBin()
		}
	}
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &Postgres{bin: bin, dir: filepath.Join(work, "postgres")}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: the cluster belongs to postgres.
		os.Chmod(work, 0o755)
		if err := exec.Command("chown", "-R", "postgres:postgres", p.dir).Run(); err != nil {
			return nil, fmt.Errorf("chown %s to postgres: %w", p.dir, err)
		}
	}
	data := filepath.Join(p.dir, "data")
	if out, err := p.run(ctx, "initdb", "-D", data, "-U", "bench", "--auth=trust", "-E", "UTF8"); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c shared_buffers=1GB -c work_mem=64MB "+
		"-c max_wal_size=8GB -c synchronous_commit=off -c max_connections=200", port, p.dir)
	if out, err := p.run(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(p.dir, "log"), "-o", opts, "-w", "start"); err != nil {
		return nil, fmt.Errorf("pg_ctl start: %w: %s", err, out)
	}
	p.URL = fmt.Sprintf("postgres://bench@127.0.0.1:%d/postgres?sslmode=disable", port)
	cfg, err := pgxpool.ParseConfig(p.URL)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 32
	if p.Pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		p.Stop()
		return nil, err
	}
	return p, p.schema(ctx)
}

func postgresBin() (string, error) {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		return "", ErrNoPostgres
	}
	return filepath.Dir(found[len(found)-1]), nil
}

// run runs one of PostgreSQL's programs, as postgres when we are root.
func (p *Postgres) run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	path := filepath.Join(p.bin, prog)
	cmd := exec.CommandContext(ctx, path, args...)
	if os.Geteuid() == 0 {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return cmd.CombinedOutput()
}

// Stop stops the cluster.
func (p *Postgres) Stop() {
	if p.Pool != nil {
		p.Pool.Close()
	}
	p.run(context.Background(), "pg_ctl", "-D", filepath.Join(p.dir, "data"), "-m", "fast", "-w", "stop")
}

// schema is the table a competent user would keep the events in: the
// identity as the primary key (so a resent event is absorbed, as in
// crmpulse), an index for the period scan, one for a person's activity,
// and a BRIN on the time, which the mostly time-ordered inserts suit.
const schema = `
CREATE TABLE events (
  tenant text NOT NULL, source text NOT NULL, id text NOT NULL,
  user_id text NOT NULL, entity text NOT NULL, record text NOT NULL,
  action text NOT NULL, at timestamptz NOT NULL,
  PRIMARY KEY (tenant, source, id));
CREATE INDEX events_tenant_at ON events (tenant, at);
CREATE INDEX events_tenant_user_at ON events (tenant, user_id, at);
CREATE INDEX events_at_brin ON events USING brin (at);
CREATE TABLE history (
  object text NOT NULL, record_id text NOT NULL, record_name text,
  changed_by text NOT NULL, field text, changed_at timestamptz NOT NULL);
CREATE INDEX history_at ON history (changed_at);
CREATE INDEX history_by_at ON history (changed_by, changed_at);
`

func (p *Postgres) schema(ctx context.Context) error {
	if _, err := p.Pool.Exec(ctx, schema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	return nil
}

// Insert is figure 1's peer: senders each insert batches of 100 events in
// one multi-row INSERT, waiting for each, for d. It returns events/s.
func (p *Postgres) Insert(ctx context.Context, senders int, d time.Duration) (float64, error) {
	var sql []byte
	sql = append(sql, "INSERT INTO events (tenant, source, id, user_id, entity, record, action, at) VALUES "...)
	for i := range 100 {
		if i > 0 {
			sql = append(sql, ',')
		}
		n := i * 8
		sql = fmt.Appendf(sql, "($%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8)
	}
	sql = append(sql, " ON CONFLICT DO NOTHING"...)
	h := History{People: 300, Now: time.Now()}
	start := time.Now()
	deadline := start.Add(d)
	counts := make([]int, senders)
	errs := make(chan error, senders)
	for w := range senders {
		go func() {
			args := make([]any, 0, 800)
			for b := 0; time.Now().Before(deadline); b++ {
				args = args[:0]
				for i := range 100 {
					e := h.Event(((b*senders+w)*100 + i) + 1<<40)
					args = append(args, "hubspot", "hubspot", e.ID, e.User, e.Entity, e.Record, e.Action, e.At)
				}
				if _, err := p.Pool.Exec(ctx, string(sql), args...); err != nil {
					errs <- err
					return
				}
				counts[w] += 100
			}
			errs <- nil
		}()
	}
	var firstErr error
	for range senders {
		firstErr = cmpErr(firstErr, <-errs)
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	return float64(total) / time.Since(start).Seconds(), firstErr
}

// CopyHistory loads the history's first n events with COPY, as a user
// moving an export in would, and returns events/s. The indexes are in
// place, as they are in crmpulse while it loads. At limit the COPY ends
// early, with what it has sent, as crmpulse's load does.
func (p *Postgres) CopyHistory(ctx context.Context, h History, n int, limit time.Duration) (float64, error) {
	conn, err := p.Pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	start := time.Now()
	deadline := start.Add(limit)
	i := 0
	_, err = conn.Conn().CopyFrom(ctx, pgx.Identifier{"events"},
		[]string{"tenant", "source", "id", "user_id", "entity", "record", "action", "at"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == n || (i%10_000 == 0 && time.Now().After(deadline)) {
				return nil, nil
			}
			e := h.Event(i)
			i++
			return []any{"default", "api", e.ID, e.User, e.Entity, e.Record, e.Action, e.At}, nil
		}))
	if err != nil {
		return 0, fmt.Errorf("copy events: %w", err)
	}
	rate := float64(i) / time.Since(start).Seconds()
	_, err = p.Pool.Exec(ctx, "VACUUM ANALYZE events")
	return rate, err
}

// CopyCSV is figure 6's peer: the same CSV file through COPY ... FROM
// STDIN into an indexed table. It returns rows/s. At limit the file is cut
// at a line's end, and the rate is that of the rows sent.
func (p *Postgres) CopyCSV(ctx context.Context, path string, limit time.Duration) (float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	lines := &lineLimiter{r: bufio.NewReaderSize(f, 1<<20), deadline: time.Now().Add(limit)}
	conn, err := p.Pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	start := time.Now()
	_, err = conn.Conn().PgConn().CopyFrom(ctx, lines,
		"COPY history (object, record_id, record_name, changed_by, field, changed_at) FROM STDIN WITH (FORMAT csv, HEADER true)")
	if err != nil {
		return 0, fmt.Errorf("copy csv: %w", err)
	}
	return float64(lines.n-1) / time.Since(start).Seconds(), nil
}

// lineLimiter reads whole lines, counting them, and ends at the first
// line boundary past its deadline.
type lineLimiter struct {
	r        *bufio.Reader
	deadline time.Time
	n        int
	rest     []byte
}

func (l *lineLimiter) Read(p []byte) (int, error) {
	if len(l.rest) == 0 {
		if l.n%10_000 == 0 && time.Now().After(l.deadline) {
			return 0, io.EOF
		}
		line, err := l.r.ReadSlice('\n')
		if len(line) == 0 {
			return 0, err
		}
		l.n++
		l.rest = line
	}
	n := copy(p, l.rest)
	l.rest = l.rest[n:]
	return n, nil
}

// reportSQL answers the report as SQL would: per person and entity, the
// changes by action and the distinct records created or updated.
const reportSQL = `
SELECT user_id, entity,
  count(*) FILTER (WHERE action = 'created'),
  count(*) FILTER (WHERE action = 'updated'),
  count(*) FILTER (WHERE action = 'deleted'),
  count(*) FILTER (WHERE action = 'restored'),
  count(DISTINCT record) FILTER (WHERE action IN ('created', 'updated'))
FROM events WHERE at >= $1 AND at < $2
GROUP BY user_id, entity`

// Query is figure 3's peer query.
func (p *Postgres) Query(ctx context.Context, period string) error {
	from, to := bounds(period, time.Now().UTC())
	rows, err := p.Pool.Query(ctx, reportSQL, from, to)
	if err != nil {
		return err
	}
	for rows.Next() {
	}
	rows.Close()
	return rows.Err()
}

// bounds are a named period's bounds in UTC, as API.md defines them.
func bounds(period string, now time.Time) (time.Time, time.Time) {
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	switch period {
	case "last_4_weeks":
		return midnight.AddDate(0, 0, -27), now
	case "year_to_date":
		return time.Date(now.Year(), 1, 1, 0, 0, 0, 0, time.UTC), now
	}
	panic("bench: no bounds for period " + strconv.Quote(period))
}
