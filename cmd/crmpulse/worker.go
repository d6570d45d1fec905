package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/crmpulse/crmpulse/aggregate"
	"github.com/crmpulse/crmpulse/cluster"
	"github.com/crmpulse/crmpulse/config"
	"github.com/crmpulse/crmpulse/stream/kafka"
)

func workerCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Keep the state of the Kafka partitions the workers' group assigns here, and answer queries for them over NATS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadRole(cmd, configPath, true, true)
			if err != nil {
				return err
			}
			return runWorker(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	roleFlags(cmd, &configPath, "127.0.0.1:0")
	return cmd
}

// runWorker runs a worker until ctx is done: it leaves the group (its
// partitions go to the others) and closes its state.
func runWorker(ctx context.Context, cfg *config.Config, stdout io.Writer) error {
	logger := newLogger(cfg, os.Stderr)
	nc, err := connectNATS(cfg, "worker", logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	db, dir, shared, err := openNode(ctx, cfg, nc, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	evlog, _, err := openLog(ctx, cfg, nil, logger)
	if err != nil {
		return err
	}
	defer evlog.Close()
	klog := evlog.(*kafka.Log)
	if err := sharePartitions(ctx, klog, shared); err != nil {
		return err
	}
	parts, err := aggregate.OpenPartitions(filepath.Join(cfg.Data, "partitions"), logger)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	w := cluster.NewWorker(cluster.WorkerConfig{Log: klog, End: klog.End, Partitions: parts, Conn: nc,
		Directory: dir, Shared: shared, Logger: logger})
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "crmpulse_worker_partitions_serving", Help: "Partitions this worker answers queries for.",
	}, func() float64 { return float64(len(w.Serving())) }))

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	httpSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go httpSrv.Serve(ln)
	defer httpSrv.Close()

	// As in serve: the collector's target, and what a quiet worker holds
	// for growth given back every 15 s.
	tuneCollector(logger)
	go func() {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		idle := newIdleReleaser(logger, parts.Trim)
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				idle.tick()
			}
		}
	}()

	logger.Info("worker started", "kafka", cfg.Kafka, "nats", cfg.NATS, "data", cfg.Data, "addr", ln.Addr().String())
	fmt.Fprintf(stdout, "crmpulse worker is running: metrics on http://%s/metrics\n", ln.Addr())
	if err := w.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("worker: %w", err)
	}
	logger.Info("worker stopped")
	return nil
}
