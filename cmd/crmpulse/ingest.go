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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/crmpulse/crmpulse/auth"
	"github.com/crmpulse/crmpulse/config"
	"github.com/crmpulse/crmpulse/ingest"
	"github.com/crmpulse/crmpulse/problem"
	"github.com/crmpulse/crmpulse/stream/kafka"
	"github.com/crmpulse/crmpulse/web"
)

func ingestCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Take events (POST /v1/events) and CRM webhooks, and append them to the Kafka event log",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadRole(cmd, configPath, true, false)
			if err != nil {
				return err
			}
			return runIngest(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	roleFlags(cmd, &configPath, "127.0.0.1:8081")
	return cmd
}

// runIngest serves the event and webhook routes until ctx is done, then
// stops taking requests and lets the last appends finish.
func runIngest(ctx context.Context, cfg *config.Config, stdout io.Writer) error {
	logger := newLogger(cfg, os.Stderr)
	if err := checkExposure(cfg); err != nil {
		return err
	}
	evlog, logName, err := openLog(ctx, cfg, nil, logger)
	if err != nil {
		return err
	}
	defer evlog.Close()
	if cfg.NATS != "" {
		if err := shareTopic(ctx, cfg, evlog.(*kafka.Log), logger); err != nil {
			return err
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	in := ingest.NewHandler(evlog, hooks(cfg), reg, logger)
	open, _ := openMode(cfg)
	tokens := auth.NewTokens(cfg.Auth.Tokens, cfg.IngestToken, cfg.AdminToken)
	mux := http.NewServeMux()
	mux.Handle("POST /v1/events", needIngest(open, tokens, in.ServeEvents))
	mux.HandleFunc("POST /v1/hooks/{source}", in.ServeHook)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	httpSrv := &http.Server{Handler: mux, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	web.Timeouts(httpSrv)
	failed := make(chan error, 1)
	go func() {
		if err := serveHTTP(httpSrv, ln, cfg); err != nil && !errors.Is(err, http.ErrServerClosed) {
			failed <- fmt.Errorf("http: %w", err)
		}
	}()
	logger.Info("ingest started", "addr", ln.Addr().String(), "log", logName)
	announce(stdout, cfg, "crmpulse ingest is listening on %s", ln.Addr())
	return untilDone(ctx, httpSrv, failed, func() {}, logger)
}

// shareTopic tells the web nodes how many partitions the topic has.
func shareTopic(ctx context.Context, cfg *config.Config, evlog *kafka.Log, logger *slog.Logger) error {
	nc, err := connectNATS(cfg, "ingest", logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	shared, err := openShared(ctx, nc, logger)
	if err != nil {
		return err
	}
	return sharePartitions(ctx, evlog, shared)
}

// needIngest lets a request through when the ingest routes are open (a
// loopback address with no token configured) or it carries a token with
// the ingest scope. Webhooks authenticate with their own signatures.
func needIngest(open bool, tokens *auth.Tokens, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !open {
			token, ok := auth.BearerToken(r.Header.Get("Authorization"))
			p, found := tokens.Lookup(token)
			if !ok || !found || !p.Has(auth.ScopeIngest) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="crmpulse"`)
				problem.Write(w, http.StatusUnauthorized, "send a bearer token with the ingest scope", nil)
				return
			}
		}
		next(w, r)
	})
}
