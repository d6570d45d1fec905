package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/aggregate"
	"github.com/crmpulse/crmpulse/alert"
	"github.com/crmpulse/crmpulse/config"
	"github.com/crmpulse/crmpulse/demo"
	"github.com/crmpulse/crmpulse/directory"
	"github.com/crmpulse/crmpulse/ingest"
	"github.com/crmpulse/crmpulse/ingest/businesscentral"
	"github.com/crmpulse/crmpulse/ingest/dynamics"
	"github.com/crmpulse/crmpulse/ingest/generic"
	"github.com/crmpulse/crmpulse/ingest/hubspot"
	"github.com/crmpulse/crmpulse/ingest/pipedrive"
	"github.com/crmpulse/crmpulse/ingest/salesforce"
	"github.com/crmpulse/crmpulse/ingest/zoho"
	"github.com/crmpulse/crmpulse/stream/jetstream"
	"github.com/crmpulse/crmpulse/stream/kafka"
	"github.com/crmpulse/crmpulse/web"
)

func serveCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run everything in one process: embedded NATS JetStream log, Badger state, ingest, workers, web",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(configPath, cmd.Flags())
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML configuration file")
	f.String("data", "./data", "directory for the event log and the state")
	f.String("addr", "127.0.0.1:8080", "HTTP listen address")
	f.String("kafka", "", "Kafka brokers host:port[,...] to use instead of the embedded log")
	f.Bool("demo", false, "generate realistic CRM traffic so the report moves at once")
	f.String("durability", config.DurabilityProcess, "process: acknowledged events survive a crash of the process; machine: also of the machine (synced before the acknowledgement)")
	f.String("timezone", "UTC", "the organisation's IANA time zone")
	f.String("log-level", "info", "debug, info, warn or error")
	f.String("log-format", "text", "text or json")
	return cmd
}

func newLogger(cfg *config.Config, w *os.File) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs the one-process shape until ctx is done, then shuts down in
// order: stop taking requests, stop the workers after their last commit,
// close the state, then the log.
func serve(ctx context.Context, cfg *config.Config, stdout, stderr interface{ Write([]byte) (int, error) }) error {
	logger := newLogger(cfg, os.Stderr)
	tuneCollector(logger)
	defer startPprof(logger)()
	if err := checkExposure(cfg); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Data, 0o750); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}

	ns, nc, err := jetstream.StartServer(jetstream.ServerConfig{Dir: cfg.Data, SyncAlways: cfg.Durability == config.DurabilityMachine})
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	defer nc.Close()

	db, err := badger.Open(aggregate.BadgerOptions(filepath.Join(cfg.Data, "state")))
	if err != nil {
		return fmt.Errorf("open state in %s: %w", cfg.Data, err)
	}
	defer db.Close()
	store, err := aggregate.Open(db, logger)
	if err != nil {
		return err
	}
	store.SetRetention(aggregate.RetentionDays(cfg.RetentionDays, cfg.TransactionsRetentionDays))
	dir, err := directory.Open(db, logger)
	if err != nil {
		return err
	}
	evlog, logName, err := openLog(ctx, cfg, nc, logger)
	if err != nil {
		return err
	}
	defer evlog.Close()

	reg := newRegistry()
	reg.MustRegister(store.Collectors()...)
	hub := web.NewHub(reg, logger)

	// Sign-in, tokens, audit, limits and pipeline metrics (security.go).
	sec, err := security(ctx, cfg, db, logger)
	if err != nil {
		return err
	}
	pipeline := registerPipeline(ctx, reg, evlog, store)
	open, openReads := openMode(cfg)

	rules, _ := cfg.PeriodRules()
	var targets []web.Target
	if cfg.TargetsFile != "" {
		if targets, err = web.LoadTargets(cfg.TargetsFile); err != nil {
			return err
		}
	}
	in := ingest.NewHandler(evlog, hooks(cfg), reg, logger)
	if lookup := cfg.UserLookup.Resolver(reg, logger); lookup != nil {
		in.SetAttributor(lookup)
	}
	readers, err := topicReaders(cfg, evlog, reg, logger) // cmd/crmpulse/topics.go
	if err != nil {
		return err
	}
	var working atomic.Bool
	srv := web.NewServer(web.Config{
		Location: cfg.Location(), Rules: rules, Version: version, Targets: targets, State: db,
		IngestToken: cfg.IngestToken, AdminToken: cfg.AdminToken,
		Open: open, OpenReads: openReads, Security: sec,
	}, store, dir, in, hub, reg, func() bool {
		return working.Load() && nc.IsConnected() && caughtUp(ctx, evlog, store)
	}, logger)
	hub.SetServer(srv)
	evaluator, err := alert.New(alert.Config{Alerts: cfg.Alerts, Calendar: cfg.Calendar,
		Location: cfg.Location(), Interval: cfg.AlertInterval, OnChange: hub.BroadcastAlert},
		db, store, dir, reg, logger)
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

	// The workers run until the HTTP server has stopped taking events, so
	// that everything acknowledged is applied before the state closes.
	workerCtx, stopWorker := context.WithCancel(context.Background())
	defer stopWorker()
	failed := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		// The hub is in this process and the embedded NATS server takes
		// no outside clients, so deltas go to the hub as they are, not
		// through the delta subject the many-process shape uses.
		worker := aggregate.NewWorker(evlog, store, func(events []crmpulse.Event) {
			pipeline.applied(events)
			hub.Publish(events)
		}, logger)
		working.Store(true)
		err := worker.Run(workerCtx)
		working.Store(false)
		if err != nil && !errors.Is(err, context.Canceled) {
			failed <- fmt.Errorf("worker: %w", err)
		}
	})
	wg.Go(func() {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		idle := newIdleReleaser(logger, store.Trim)
		for {
			select {
			case <-workerCtx.Done():
				return
			case now := <-t.C:
				hub.Tick(now)
				store.ReleasePages()
				idle.tick()
			}
		}
	})
	if len(cfg.Alerts.Rules) > 0 {
		wg.Go(func() { evaluator.Run(workerCtx) })
	}
	runReaders(workerCtx, &wg, readers, logger)
	if cfg.RetentionDays > 0 || cfg.TransactionsRetentionDays > 0 {
		wg.Go(func() { store.RunRetention(workerCtx, time.Hour) })
	}
	if cfg.Demo {
		wg.Go(func() {
			if err := demo.Run(workerCtx, evlog, dir, cfg.Location(), logger); err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("demo generator stopped", "err", err)
			}
		})
	}
	go func() {
		if err := serveHTTP(httpSrv, ln, cfg); err != nil && !errors.Is(err, http.ErrServerClosed) {
			failed <- fmt.Errorf("http: %w", err)
		}
	}()
	logger.Info("started", "addr", cfg.Addr, "data", cfg.Data, "log", logName,
		"durability", cfg.Durability, "events", store.Events())
	logAccess(cfg, logger)
	announce(stdout, cfg, "crmpulse is running: open %s/ in a browser", ln.Addr())
	return untilDone(ctx, httpSrv, failed, func() { stopWorker(); wg.Wait() }, logger)
}

// endedLog is a log that tells where each partition ends; both backends do.
type endedLog interface {
	crmpulse.Log
	End(ctx context.Context) (map[int32]int64, error)
}

// openLog opens Kafka when brokers are configured, else the embedded
// JetStream log on nc.
func openLog(ctx context.Context, cfg *config.Config, nc *nats.Conn, logger *slog.Logger) (endedLog, string, error) {
	if cfg.Kafka == "" {
		l, err := jetstream.Open(ctx, nc, logger)
		return l, "jetstream (embedded)", err
	}
	kc := kafka.Config{
		Brokers: strings.Split(cfg.Kafka, ","), Topic: cfg.KafkaTopic,
		Partitions: int32(cfg.KafkaPartitions), ReplicationFactor: int16(cfg.KafkaReplicationFactor),
		SessionTimeout: cfg.KafkaSessionTimeout,
		SASL:           kafka.SASL{Mechanism: cfg.KafkaSASLMechanism, User: cfg.KafkaSASLUser, Password: cfg.KafkaSASLPassword},
		Logger:         logger,
	}
	if cfg.KafkaTLS {
		tc, err := kafkaTLS(cfg.KafkaTLSCA)
		if err != nil {
			return nil, "", err
		}
		kc.TLS = tc
	}
	l, err := kafka.Open(ctx, kc)
	return l, "kafka " + cfg.Kafka, err
}

// kafkaTLS returns the TLS settings for Kafka, trusting caFile's
// certificates when it is set and the system's otherwise.
func kafkaTLS(caFile string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return tc, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("config kafka_tls_ca: %w", err)
	}
	tc.RootCAs = x509.NewCertPool()
	if !tc.RootCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("config kafka_tls_ca: %s holds no PEM certificate", caFile)
	}
	return tc, nil
}

// caughtUp reports whether the workers have applied everything the log
// held when asked.
//
// TODO(stream): a record that went to the dead letters moves no committed
// position, so while the newest record of a partition is such a record
// the server reads as not ready, until the next good record is applied.
func caughtUp(ctx context.Context, evlog endedLog, store *aggregate.Store) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	end, err := evlog.End(ctx)
	if err != nil {
		return false
	}
	for part, last := range end {
		if last >= 0 && store.Resume(part) <= last {
			return false
		}
	}
	return true
}

// hooks returns the CRM webhook decoders configured with their secrets. A
// hook whose secret is not set refuses every delivery with a 401; the
// generic hook exists only with a mapping, since without one it could
// make no event of anything.
func hooks(cfg *config.Config) []ingest.Hook {
	hs := []ingest.Hook{
		hubspot.New(hubspot.Config{Secret: cfg.HubSpotSecret, PublicURL: cfg.PublicURL}),
		salesforce.New(salesforce.Config{Secret: cfg.SalesforceSecret, OrgID: cfg.SalesforceOrgID}),
		salesforce.NewOutbound(salesforce.OutboundConfig{OrgID: cfg.SalesforceOrgID}),
		dynamics.New(dynamics.Config{Key: cfg.DynamicsKey}),
		businesscentral.New(businesscentral.Config{ClientState: cfg.BusinessCentralClientState}),
		pipedrive.New(pipedrive.Config{User: cfg.PipedriveUser, Password: cfg.PipedrivePassword}),
		zoho.New(zoho.Config{Token: cfg.ZohoToken}),
	}
	if cfg.Generic.Entity != "" || cfg.Generic.Record != "" {
		hs = append(hs, generic.New(generic.Config{Secret: cfg.GenericSecret, Mapping: cfg.Generic}))
	}
	return hs
}
