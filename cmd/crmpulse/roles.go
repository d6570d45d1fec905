package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/crmpulse/crmpulse/cluster"
	"github.com/crmpulse/crmpulse/config"
	"github.com/crmpulse/crmpulse/directory"
	"github.com/crmpulse/crmpulse/stream/kafka"
)

// What the roles of the many-process shape (ingest, worker, web) share:
// their common flags, the connection to NATS, the node's own Badger and
// the shared directory.

// roleFlags adds the flags every role takes.
func roleFlags(cmd *cobra.Command, configPath *string, addr string) {
	f := cmd.Flags()
	f.StringVar(configPath, "config", "", "YAML configuration file")
	f.String("data", "./data", "directory for this node's state")
	f.String("addr", addr, "HTTP listen address")
	f.String("kafka", "", "Kafka brokers host:port[,...]: the event log")
	f.String("nats", "", "NATS server URL nats://host:port[,...]: queries, deltas and the shared buckets")
	f.Int("kafka-partitions", 12, "partitions of the event topic when it is created")
	f.Duration("kafka-session-timeout", 45*time.Second, "how long the workers' group waits for a silent worker")
	f.String("timezone", "UTC", "the organisation's IANA time zone")
	f.String("log-level", "info", "debug, info, warn or error")
	f.String("log-format", "text", "text or json")
}

// loadRole loads the configuration of a role and checks that the servers
// it needs are set.
func loadRole(cmd *cobra.Command, configPath string, needKafka, needNATS bool) (*config.Config, error) {
	cfg, err := config.Load(configPath, cmd.Flags())
	if err != nil {
		return nil, err
	}
	if needKafka && cfg.Kafka == "" {
		return nil, fmt.Errorf("crmpulse %s needs --kafka (or CRMPULSE_KAFKA): the event log", cmd.Name())
	}
	if needNATS && cfg.NATS == "" {
		return nil, fmt.Errorf("crmpulse %s needs --nats (or CRMPULSE_NATS): the queries and deltas", cmd.Name())
	}
	if err := os.MkdirAll(cfg.Data, 0o750); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	return cfg, nil
}

// connectNATS connects to the cluster's NATS and keeps reconnecting.
func connectNATS(cfg *config.Config, role string, logger *slog.Logger) (*nats.Conn, error) {
	host, _ := os.Hostname()
	nc, err := nats.Connect(cfg.NATS, nats.Name(fmt.Sprintf("crmpulse-%s@%s-%d", role, host, os.Getpid())),
		nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			logger.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) { logger.Info("nats reconnected") }))
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", cfg.NATS, err)
	}
	return nc, nil
}

// nodeID names this process in leases and logs.
func nodeID(role string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s@%s-%d", role, host, os.Getpid())
}

// openNode opens the node's own Badger (directory copy, audit, alert
// states, display tokens) and the directory kept in step with the shared
// bucket, and starts following the bucket. It returns once the directory
// holds what the bucket held.
func openNode(ctx context.Context, cfg *config.Config, nc *nats.Conn, logger *slog.Logger) (*badger.DB, *directory.Directory, *cluster.Shared, error) {
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(cfg.Data, "node")).WithLogger(nil))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open node state in %s: %w", cfg.Data, err)
	}
	fail := func(err error) (*badger.DB, *directory.Directory, *cluster.Shared, error) {
		db.Close()
		return nil, nil, nil, err
	}
	dir, err := directory.Open(db, logger)
	if err != nil {
		return fail(err)
	}
	shared, err := cluster.OpenShared(ctx, nc, dir, logger)
	if err != nil {
		return fail(err)
	}
	go func() {
		if err := shared.Run(ctx); err != nil && ctx.Err() == nil {
			logger.Error("shared bucket no longer followed", "err", err)
		}
	}()
	select {
	case <-shared.Ready():
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	return db, dir, shared, nil
}

// sharePartitions writes the event topic's partition count to the shared
// bucket, for the web nodes.
func sharePartitions(ctx context.Context, evlog *kafka.Log, shared *cluster.Shared) error {
	end, err := evlog.End(ctx)
	if err != nil {
		return err
	}
	return shared.PutSetting(ctx, cluster.SettingPartitions, fmt.Sprint(len(end)))
}

// openShared opens the shared bucket without a directory, for a node that
// only writes settings.
func openShared(ctx context.Context, nc *nats.Conn, logger *slog.Logger) (*cluster.Shared, error) {
	return cluster.OpenShared(ctx, nc, nil, logger)
}
