package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/alert"
	"github.com/crmpulse/crmpulse/cluster"
	"github.com/crmpulse/crmpulse/config"
	"github.com/crmpulse/crmpulse/ingest"
	"github.com/crmpulse/crmpulse/web"
)

func webCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "web",
		Short: "Serve the API, the live view and the page, answering queries from the workers over NATS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadRole(cmd, configPath, false, true)
			if err != nil {
				return err
			}
			timeout, _ := cmd.Flags().GetDuration("query-timeout")
			return runWeb(cmd.Context(), cfg, timeout, cmd.OutOrStdout())
		},
	}
	roleFlags(cmd, &configPath, "127.0.0.1:8080")
	cmd.Flags().Duration("query-timeout", 2*time.Second, "how long a query waits for the workers before it reports the missing partitions")
	return cmd
}

// alertLease is the lease whose holder evaluates the inactivity alerts, and
// leaseTTL how long it outlives a holder that stopped renewing.
const (
	alertLease = "alerts"
	leaseTTL   = 15 * time.Second
)

// runWeb runs a web node until ctx is done.
func runWeb(ctx context.Context, cfg *config.Config, timeout time.Duration, stdout io.Writer) error {
	logger := newLogger(cfg, os.Stderr)
	if err := checkExposure(cfg); err != nil {
		return err
	}
	nc, err := connectNATS(cfg, "web", logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	nodeCtx, stopNode := context.WithCancel(context.Background())
	defer stopNode()
	db, dir, shared, err := openNode(nodeCtx, cfg, nc, logger)
	if err != nil {
		return err
	}
	defer db.Close()

	client := cluster.NewClient(cluster.ClientConfig{Conn: nc, Shared: shared,
		Partitions: int32(cfg.KafkaPartitions), Timeout: timeout, Logger: logger})

	reg := newRegistry()
	hub := web.NewHub(reg, logger)
	unsubscribe, err := subscribeDeltas(nc, hub)
	if err != nil {
		return err
	}
	defer unsubscribe()

	sec, err := security(ctx, cfg, db, logger)
	if err != nil {
		return err
	}
	open, openReads := openMode(cfg)
	rules, _ := cfg.PeriodRules()
	var targets []web.Target
	if cfg.TargetsFile != "" {
		if targets, err = web.LoadTargets(cfg.TargetsFile); err != nil {
			return err
		}
	}
	// Events go to the ingest nodes; a web node refuses them.
	in := ingest.NewHandler(noLog{}, hooks(cfg), reg, logger)
	srv := web.NewServer(web.Config{
		Location: cfg.Location(), Rules: rules, Version: version, Targets: targets, State: db,
		IngestToken: cfg.IngestToken, AdminToken: cfg.AdminToken,
		Open: open, OpenReads: openReads, Security: sec,
	}, client, dir, in, hub, reg, nc.IsConnected, logger)
	hub.SetServer(srv)
	evaluator, err := alert.New(alert.Config{Alerts: cfg.Alerts, Calendar: cfg.Calendar,
		Location: cfg.Location(), Interval: cfg.AlertInterval, OnChange: hub.BroadcastAlert},
		db, client, dir, reg, logger)
	if err != nil {
		return err
	}
	srv.SetAlerts(evaluator)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	httpSrv := &http.Server{Handler: srv.Handler(), ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	web.Timeouts(httpSrv)

	var wg sync.WaitGroup
	wg.Go(func() { tick(nodeCtx, hub) })
	if len(cfg.Alerts.Rules) > 0 {
		lease, err := cluster.OpenLease(ctx, nc, alertLease, nodeID("web"), leaseTTL, logger)
		if err != nil {
			return err
		}
		wg.Go(func() {
			lease.Run(nodeCtx, func(ctx context.Context) { evaluateWhole(ctx, evaluator, client, cfg.AlertInterval, logger) })
		})
	}
	failed := make(chan error, 1)
	go func() {
		if err := serveHTTP(httpSrv, ln, cfg); err != nil && !errors.Is(err, http.ErrServerClosed) {
			failed <- fmt.Errorf("http: %w", err)
		}
	}()
	logger.Info("web started", "addr", ln.Addr().String(), "nats", cfg.NATS, "partitions", client.Partitions())
	logAccess(cfg, logger)
	announce(stdout, cfg, "crmpulse is running: open %s/ in a browser", ln.Addr())
	return untilDone(ctx, httpSrv, failed, func() { stopNode(); wg.Wait() }, logger)
}

// tick moves the live views' periods along.
func tick(ctx context.Context, hub *web.Hub) {
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			hub.Tick(now)
		}
	}
}

// evaluateWhole evaluates the alert rules every interval while this node
// holds the alert lease, and only when every partition answers: from part
// of the state, everyone in a missing partition would look inactive.
func evaluateWhole(ctx context.Context, e *alert.Evaluator, client *cluster.Client, every time.Duration, logger *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if missing := client.Missing(); len(missing) > 0 {
			logger.Warn("alerts not evaluated: partitions missing", "partitions", missing)
		} else if err := e.Evaluate(ctx); err != nil && ctx.Err() == nil {
			logger.Error("alert evaluation failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// noLog is the event log of a web node: it takes no events, which go to
// the ingest nodes.
type noLog struct{}

var errNoLog = errors.New("this is a web node: send events to crmpulse ingest")

func (noLog) Append(context.Context, []crmpulse.Event) error { return errNoLog }
func (noLog) Consume(context.Context, crmpulse.ResumeFunc, crmpulse.BatchHandler) error {
	return errNoLog
}
func (noLog) Close() error { return nil }
