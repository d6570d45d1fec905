package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/config"
	"github.com/crmpulse/crmpulse/web"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
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

// newRegistry returns the process's metrics registry, with the Go runtime's
// and the process's own collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// subscribeDeltas hands the events the workers publish after each commit
// to the hub, which pushes them to its websocket clients.
func subscribeDeltas(nc *nats.Conn, hub *web.Hub) (func(), error) {
	sub, err := nc.Subscribe(crmpulse.DeltaSubject, func(m *nats.Msg) {
		var events []crmpulse.Event
		if err := json.Unmarshal(m.Data, &events); err == nil {
			hub.Publish(events)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to deltas: %w", err)
	}
	return func() { sub.Unsubscribe() }, nil
}
