package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/crmpulse/crmpulse/config"
)

// shutdownWait bounds how long in-flight requests may finish after the
// first signal.
const shutdownWait = 10 * time.Second

// announce prints where the process listens, with its scheme: the line
// users follow and tests read.
func announce(stdout io.Writer, cfg *config.Config, format string, addr fmt.Stringer) {
	scheme := "http"
	if cfg.TLS() {
		scheme = "https"
	}
	fmt.Fprintf(stdout, format+"\n", scheme+"://"+addr.String())
}

// shuttable is the part of an http.Server that untilDone stops.
type shuttable interface {
	Shutdown(ctx context.Context) error
}

// untilDone waits for the first signal (ctx) or a failure of a component,
// then shuts down in order: stop taking requests, then stop (the workers
// and the rest), which returns once they have finished.
func untilDone(ctx context.Context, srv shuttable, failed <-chan error, stop func(), logger *slog.Logger) error {
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-failed:
	}
	logger.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	srv.Shutdown(shutCtx)
	stop()
	return runErr
}
