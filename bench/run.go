package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Runner runs the parts of a benchmark in order and fills one table.
type Runner struct {
	Cfg      Config
	Root     string // module root, where ./cmd/crmpulse is built from
	Log      *slog.Logger
	Table    Table
	Profiler Profiler

	bin      string
	pg       *Postgres
	pgErr    error
	ceilings Ceilings
	csvPath  string
	mapping  string
}

// Run builds the binary, runs every part the configuration selects, and
// writes the table and the profiles' summaries to out.
func (r *Runner) Run(ctx context.Context, out io.Writer) error {
	if err := RaiseFileLimit(); err != nil {
		r.Log.Warn("cannot raise the open-file limit", "err", err)
	}
	r.Table.Commit = commit(r.Root)
	r.Table.Load[0] = loadAverage()
	r.Profiler.Dir = r.Cfg.Work
	r.Profiler.Enabled = r.Cfg.Profile
	var err error
	if r.bin, err = Build(ctx, r.Root, r.Cfg.Work); err != nil {
		return err
	}
	if r.selected("postgres") && r.Cfg.Postgres {
		r.Log.Info("starting postgresql")
		r.pg, r.pgErr = StartPostgres(ctx, r.Cfg.Work)
		if r.pgErr != nil {
			r.Log.Warn("postgresql peer skipped", "err", r.pgErr)
			r.pg = nil
		} else {
			defer r.pg.Stop()
		}
	} else {
		r.pgErr = fmt.Errorf("not selected")
	}
	parts := []struct {
		name string
		run  func(context.Context) error
	}{
		{"ceilings", r.runCeilings},
		{"ingest", r.runIngest},
		{"live", r.runLive},
		{"fanout", r.runFanout},
		{"report", r.runReport},
		{"import", r.runImport},
	}
	for _, p := range parts {
		if !r.selected(p.name) {
			continue
		}
		r.Log.Info("part", "name", p.name)
		start := time.Now()
		if err := p.run(ctx); err != nil {
			r.Log.Error("part failed", "name", p.name, "err", err)
			r.Table.Add(Row{Figure: p.name, Verdict: Fail, Note: "did not run to the end: " + err.Error()})
		}
		r.Log.Info("part done", "name", p.name, "took", time.Since(start).Round(time.Second))
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	r.Table.Load[1] = loadAverage()
	r.Table.Markdown(out)
	for _, p := range r.Profiler.Profiles {
		fmt.Fprintf(out, "\n### CPU profile of the server: %s\n\n%s\n```\n%s```\n", p.Figure, p.Path, p.Top)
	}
	return nil
}

// selected reports whether part runs under BENCH_ONLY.
func (r *Runner) selected(part string) bool {
	if r.Cfg.Only == "" {
		return true
	}
	for p := range strings.SplitSeq(r.Cfg.Only, ",") {
		if strings.TrimSpace(p) == part {
			return true
		}
	}
	return false
}

// peer is the PostgreSQL peer cell: what measure gives, or why it is missing.
func (r *Runner) peer(label string, crmpulse float64, measure func() (float64, error)) string {
	if r.pg == nil {
		return "PostgreSQL skipped: " + r.pgErr.Error()
	}
	v, err := measure()
	if err != nil {
		return "PostgreSQL failed: " + err.Error()
	}
	return fmt.Sprintf("PostgreSQL %s %s; crmpulse/PG %s", label, rate(v), ratio(crmpulse, v))
}

func (r *Runner) runCeilings(ctx context.Context) error {
	d := min(r.Cfg.Ingest/2, 20*time.Second)
	c, err := RunCeilings(ctx, r.Cfg.Work, r.Cfg.Senders, d)
	if err != nil {
		return err
	}
	r.ceilings = c
	r.Table.Add(Row{Figure: "ceiling: JetStream append, batches of 100", Value: rate(c.Publish), Verdict: Info,
		Note: fmt.Sprintf("%d senders, crmpulse's own log, in process", r.Cfg.Senders)})
	r.Table.Add(Row{Figure: "ceiling: JetStream consume", Value: rate(c.Consume), Verdict: Info, Note: "no-op handler"})
	r.Table.Add(Row{Figure: "ceiling: Badger WriteBatch, 3 keys per event", Value: rate(c.Badger), Verdict: Info,
		Note: "identity, counter and record keys"})
	return nil
}

// ceilingNote sets a rate beside the slower of publish and consume.
func (r *Runner) ceilingNote(v float64) string {
	limit := min(r.ceilings.Publish, r.ceilings.Consume)
	if limit == 0 {
		return ""
	}
	return fmt.Sprintf("; %.0f%% of the JetStream ceiling", 100*v/limit)
}

func (r *Runner) runIngest(ctx context.Context) error {
	s, err := StartServer(ctx, r.bin, r.Cfg.Work, "ingest")
	if err != nil {
		return err
	}
	defer s.Stop()
	wait := r.Profiler.During(ctx, s, "1 ingest", min(r.Cfg.Ingest, 30*time.Second))
	cpuBefore, _ := s.CPU()
	res, err := RunIngest(ctx, s, r.Cfg.Senders, r.Cfg.Ingest)
	cpuAfter, _ := s.CPU()
	wait()
	if err != nil {
		return err
	}
	v := verdict(res.AppliedRate(), 50_000, true)
	if res.Errors > 0 || res.Counted != res.Acked {
		v = Fail
	}
	note := fmt.Sprintf("%s events over %s, %d senders; acknowledged %s, caught up %s after the last; report counts %s of %s; %d errors",
		thousands(res.Acked), res.Sending.Round(time.Second), r.Cfg.Senders, rate(res.AckRate()),
		res.CatchUp.Round(time.Millisecond), thousands(res.Counted), thousands(res.Acked), res.Errors)
	if res.FirstFail != "" {
		note += " (first: " + res.FirstFail + ")"
	}
	if res.Acked > 0 {
		// The server's CPU per event is what the load of other processes
		// changes least: the rate is bounded by it over two cores.
		note += fmt.Sprintf("; server CPU %.1f µs/event (%.0f%% of the run on 2 cores)",
			float64((cpuAfter-cpuBefore).Microseconds())/float64(res.Acked),
			100*(cpuAfter-cpuBefore).Seconds()/(2*(res.Sending+res.CatchUp).Seconds()))
	}
	r.Table.Add(Row{Figure: "1 end to end: signed HubSpot batches of 100, applied", Value: rate(res.AppliedRate()),
		Target: "≥ 50,000 ev/s for 60 s", Verdict: v, Note: note + r.ceilingNote(res.AppliedRate()),
		Peer: r.peer("batched INSERT of 100", res.AppliedRate(), func() (float64, error) {
			return r.pg.Insert(ctx, r.Cfg.Senders, r.Cfg.Ingest)
		})})
	return nil
}

func (r *Runner) runLive(ctx context.Context) error {
	res, err := r.liveFigure(ctx, "2 live latency", r.Cfg.LiveClients, r.Cfg.LiveRate/100, 100)
	if err != nil {
		return err
	}
	r.addLive("2 POST → websocket frame at "+thousands(int64(r.Cfg.LiveRate))+" ev/s", res, 1000,
		50*time.Millisecond, "p99 ≤ 50 ms, 1,000 clients")
	return nil
}

func (r *Runner) runFanout(ctx context.Context) error {
	res, err := r.liveFigure(ctx, "5 fan-out", r.Cfg.FanoutClients, r.Cfg.FanoutRate, 1)
	if err != nil {
		return err
	}
	r.addLive(fmt.Sprintf("5 fan-out: %s clients × %d deltas/s", thousands(int64(r.Cfg.FanoutClients)), r.Cfg.FanoutRate),
		res, 10_000, 100*time.Millisecond, "10,000 clients, p99 ≤ 100 ms")
	return nil
}

// liveFigure runs RunLive on a server of its own, profiling it once the
// clients are connected.
func (r *Runner) liveFigure(ctx context.Context, name string, clients, perSecond, batch int) (LiveResult, error) {
	s, err := StartServer(ctx, r.bin, r.Cfg.Work, strings.Fields(name)[1])
	if err != nil {
		return LiveResult{}, err
	}
	defer s.Stop()
	wait := func() {}
	res, err := RunLive(ctx, s, clients, perSecond, batch, r.Cfg.LiveFor, func() {
		wait = r.Profiler.During(ctx, s, name, r.Cfg.LiveFor)
	})
	wait()
	return res, err
}

// addLive adds a latency row. A run that lost deliveries, skipped ticks or
// saw a delta out of sequence fails whatever its percentiles, since what is
// missing is not in them, and so does one with fewer clients than the
// target names.
func (r *Runner) addLive(figure string, res LiveResult, clients int, limit time.Duration, target string) {
	v := verdict(float64(res.P99), float64(limit), false)
	if res.Delivered() < 0.999 || res.Skipped > 0 || res.Errors > 0 || res.Gaps > 0 || res.Clients < clients {
		v = Fail
	}
	value := "p50 " + ms(res.P50) + ", p99 " + ms(res.P99)
	if res.Seen == 0 {
		value = "no frame arrived"
	}
	r.Table.Add(Row{Figure: figure, Value: value, Target: target,
		Verdict: v, Note: res.Note()})
}

func (r *Runner) runReport(ctx context.Context) error {
	s, err := StartServer(ctx, r.bin, r.Cfg.Work, "report")
	if err != nil {
		return err
	}
	defer s.Stop()
	h := History{People: r.Cfg.People, Now: time.Now(), Events: r.Cfg.Events}
	load, err := LoadHistory(ctx, s, h, r.Cfg.Events, r.Cfg.LoadLimit)
	if err != nil {
		return err
	}
	note := fmt.Sprintf("%s events, sent in %s, caught up %s later", thousands(int64(load.Events)),
		load.Sending.Round(time.Second), load.CatchUp.Round(time.Second))
	if load.Stopped != "" {
		note += "; stopped early: " + load.Stopped
	}
	r.Table.Add(Row{Figure: fmt.Sprintf("load: POST /v1/events NDJSON, %d loaders × %s a request", loaders,
		thousands(loadBatch)), Value: rate(load.Rate()), Verdict: Info, Note: note,
		Peer: r.peer("COPY", load.Rate(), func() (float64, error) { return r.pg.CopyHistory(ctx, h, load.Events, r.Cfg.LoadLimit) })})
	stored := thousands(int64(load.Events))
	if load.Events < r.Cfg.Events {
		stored = fmt.Sprintf("%s (of %s: load stopped early)", stored, thousands(int64(r.Cfg.Events)))
	}

	wait := r.Profiler.During(ctx, s, "3 report", r.Cfg.QueryFor)
	got := OpenLoop(ctx, r.Cfg.QueryRate, r.Cfg.QueryFor, ReportQuery(s))
	wait()
	queried := time.Now()
	queriedMem, err := s.Memory()
	if err != nil {
		return err
	}
	var peer QueryResult
	if r.pg != nil {
		peer = OpenLoop(ctx, r.Cfg.QueryRate, r.Cfg.QueryFor, r.pg.Query)
	}
	for _, p := range Periods {
		r.Table.Add(r.reportRow(p, stored, load.Events < r.Cfg.Events, got, peer))
	}

	// The figure is the memory of a server holding the events: VmRSS once
	// they are applied and queried and the server has been quiet for
	// restAfter. Beside it are VmRSS just after the queries and the peak,
	// while a backlog of millions was applied.
	if err := sleep(ctx, time.Until(queried.Add(restAfter))); err != nil {
		return err
	}
	mem, err := s.Memory()
	r.Profiler.Heap(ctx, s, "4 memory (live heap, in use)")
	if err != nil {
		return err
	}
	v := verdict(float64(mem.RSS), 256<<20, false)
	if load.Events < r.Cfg.Events {
		v = Fail
	}
	r.Table.Add(Row{Figure: fmt.Sprintf("4 resident memory with %s events", stored),
		Value: "VmRSS " + mib(mem.RSS) + ", peak " + mib(mem.Peak), Target: "≤ 256 MiB",
		Verdict: v, Note: fmt.Sprintf("from /proc/PID/status %s after the queries: %s anonymous, %s mapped files; "+
			"%s just after the queries; the peak is while the load was applied",
			restAfter, mib(mem.Anon), mib(mem.File), mib(queriedMem.RSS))})
	return nil
}

// restAfter is how long figure 4 lets the server be quiet before reading
// its memory: two of the server's 15-second ticks, at which it gives back
// what it holds and does not need (cmd/crmpulse/memory.go).
const restAfter = 35 * time.Second

// sleep waits for d, or less if ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *Runner) reportRow(period, stored string, short bool, got, peer QueryResult) Row {
	lat := got.Latency[period]
	v := verdict(float64(lat.Quantile(0.99)), float64(20*time.Millisecond), false)
	if got.Skipped > 0 || got.Errors > 0 || short {
		v = Fail
	}
	row := Row{Figure: fmt.Sprintf("3 /v1/report %s, %d people, %s events, %d q/s", period, r.Cfg.People,
		stored, r.Cfg.QueryRate),
		Value: percentiles(lat), Target: "p99 ≤ 20 ms",
		Verdict: v, Note: got.Note()}
	if r.pg == nil {
		row.Peer = "PostgreSQL skipped: " + r.pgErr.Error()
		return row
	}
	pl := peer.Latency[period]
	// Latencies are compared the other way from rates, as how many times
	// slower PostgreSQL answers, so that the ratio still reads when it is
	// large.
	row.Peer = fmt.Sprintf("PostgreSQL GROUP BY: %s (%s); p99 PG/crmpulse %s", percentiles(pl), peer.Note(),
		ratio(float64(pl.Quantile(0.99)), float64(lat.Quantile(0.99))))
	return row
}

func (r *Runner) runImport(ctx context.Context) error {
	var err error
	r.csvPath, r.mapping, err = WriteHistoryCSV(r.Cfg.Work, r.Cfg.Rows, r.Cfg.People, time.Now())
	if err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	defer os.Remove(r.csvPath)
	s, err := StartServer(ctx, r.bin, r.Cfg.Work, "import")
	if err != nil {
		return err
	}
	defer s.Stop()
	wait := r.Profiler.During(ctx, s, "6 import", 30*time.Second)
	res, err := RunImport(ctx, s, r.csvPath, r.mapping, r.Cfg.Rows, r.Cfg.LoadLimit)
	wait()
	if err != nil {
		return err
	}
	r.Table.Add(Row{Figure: fmt.Sprintf("6 CSV import of %s rows (`crmpulse import`)", thousands(int64(r.Cfg.Rows))),
		Value: rate(res.Rate()), Target: "≥ 200,000 ev/s", Verdict: importVerdict(res),
		Note: fmt.Sprintf("import took %s, applied %s later (%s applied); %s", res.Command.Round(time.Second),
			res.CatchUp.Round(time.Second), rate(res.AppliedRate()), strings.TrimSpace(res.Output)),
		Peer: r.peer("COPY FROM STDIN of the CSV", res.Rate(), func() (float64, error) {
			return r.pg.CopyCSV(ctx, r.csvPath, r.Cfg.LoadLimit)
		})})
	return nil
}

// commit names the commit the run measured, marked when the tree differs.
func commit(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty", "--abbrev=12").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// importVerdict fails an import that was stopped before its end, whatever
// its rate, since the figure is for the whole file.
func importVerdict(res ImportResult) Verdict {
	if res.Stopped {
		return Fail
	}
	return verdict(res.Rate(), 200_000, true)
}

// percentiles formats p50 and p99, or says that nothing was measured.
func percentiles(h *Histogram) string {
	if h.Count() == 0 {
		return "no query answered"
	}
	return "p50 " + ms(h.Quantile(0.5)) + ", p99 " + ms(h.Quantile(0.99))
}
