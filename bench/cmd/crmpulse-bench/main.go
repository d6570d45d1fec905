// Command crmpulse-bench measures a real crmpulse binary on loopback and
// prints one markdown table: each figure, its target, the verdict, and the
// same work done by PostgreSQL or a bare part. `make bench` runs it; see
// docs/benchmarks.md for the figures and how to read them.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/crmpulse/crmpulse/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "crmpulse-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := bench.ConfigFromEnv()
	if err != nil {
		return err
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if cfg.Work == "" {
		if cfg.Work, err = os.MkdirTemp("", "crmpulse-bench-"); err != nil {
			return err
		}
		if !cfg.Keep {
			defer os.RemoveAll(cfg.Work)
		}
	} else if err := os.MkdirAll(cfg.Work, 0o755); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "bench")
	logger.Info("benchmark", "work", cfg.Work, "short", cfg.Short, "events", cfg.Events, "rows", cfg.Rows)
	r := &bench.Runner{Cfg: cfg, Root: root, Log: logger}
	return r.Run(ctx, os.Stdout)
}
