package jetstream

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServerConfig configures the embedded NATS server.
type ServerConfig struct {
	// Dir holds JetStream's file store.
	Dir string
	// SyncAlways makes JetStream sync every write to disk before it
	// acknowledges, so an acknowledged event survives a crash of the machine
	// and not only of the process. It costs a disk flush per publish batch.
	SyncAlways bool
	// Listen is host:port for outside NATS clients; empty means the server
	// takes in-process connections only.
	Listen string
}

// StartServer starts an embedded NATS server with JetStream on disk and
// returns it with an in-process client connection. The caller shuts both
// down: the connection first, then the server.
func StartServer(cfg ServerConfig) (*server.Server, *nats.Conn, error) {
	opts := &server.Options{
		ServerName: "crmpulse",
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.Dir, "jetstream"),
		SyncAlways: cfg.SyncAlways,
		NoSigs:     true,
		NoLog:      true,
		DontListen: cfg.Listen == "",
	}
	if cfg.Listen != "" {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, nil, err
		}
		opts.Host, opts.Port = host, port
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("start nats server: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, nil, fmt.Errorf("start nats server: not ready after 30s")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Name("crmpulse"),
		nats.MaxReconnects(-1))
	if err != nil {
		ns.Shutdown()
		return nil, nil, fmt.Errorf("connect to embedded nats: %w", err)
	}
	return ns, nc, nil
}

func splitHostPort(addr string) (string, int, error) {
	var host string
	var port int
	i := len(addr) - 1
	for i >= 0 && addr[i] != ':' {
		i--
	}
	if i < 0 {
		return "", 0, fmt.Errorf("nats listen address %q: want host:port", addr)
	}
	host = addr[:i]
	if _, err := fmt.Sscanf(addr[i+1:], "%d", &port); err != nil {
		return "", 0, fmt.Errorf("nats listen address %q: bad port", addr)
	}
	return host, port, nil
}
