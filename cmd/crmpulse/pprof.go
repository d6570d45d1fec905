package main

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"

	"github.com/crmpulse/crmpulse/config"
)

// startPprof serves net/http/pprof on CRMPULSE_PPROF_ADDR, a loopback
// address of its own, when that variable is set; the benchmark uses it to
// profile the server under load. It is left out of the flags and the
// configuration on purpose: profiles expose internals, so it is a hidden
// switch for whoever runs the process. The returned function stops it.
func startPprof(logger *slog.Logger) func() {
	addr := os.Getenv("CRMPULSE_PPROF_ADDR")
	if addr == "" {
		return func() {}
	}
	if !config.IsLoopback(addr) {
		logger.Warn("pprof not started: CRMPULSE_PPROF_ADDR is not a loopback address", "addr", addr)
		return func() {}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		logger.Warn("pprof not started", "addr", addr, "err", err)
		return func() {}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("pprof stopped", "err", err)
		}
	}()
	logger.Info("pprof listening", "addr", ln.Addr().String())
	return func() { srv.Close() }
}
