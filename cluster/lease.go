package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BucketLeases holds the leases, one key per lease, each entry living TTL
// past its last renewal.
const BucketLeases = "crmpulse-leases"

// Lease is a lease in the leases bucket that at most one node holds at a
// time: taken with a create (which fails while the key exists), renewed
// with an update conditional on the revision the holder last wrote (which
// fails once someone else took it), and lost when the holder stops renewing
// for TTL, at which point the bucket drops the key and another node's
// create succeeds.
//
// A holder stops its work as soon as a renewal fails, but a holder that is
// paused for longer than TTL (a stopped process, a long GC pause) may
// overlap with the next by up to one renewal interval: work done under the
// lease must tolerate that (the alert evaluator stores and checks its
// states before it notifies).
type Lease struct {
	kv     jetstream.KeyValue
	key    string
	node   string
	ttl    time.Duration
	logger *slog.Logger
	held   atomic.Bool
}

// OpenLease returns the lease name for this node; ttl is how long the
// lease outlives its holder's last renewal.
func OpenLease(ctx context.Context, nc *nats.Conn, name, node string, ttl time.Duration, logger *slog.Logger) (*Lease, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketLeases, History: 1, TTL: ttl,
		Description: "crmpulse: leases of the work one node does for the cluster"})
	if err != nil {
		return nil, fmt.Errorf("open key-value bucket %s: %w", BucketLeases, err)
	}
	return &Lease{kv: kv, key: name, node: node, ttl: ttl,
		logger: logger.With("component", "lease", "lease", name, "node", node)}, nil
}

// Held reports whether this node holds the lease now.
func (l *Lease) Held() bool { return l.held.Load() }

// Run tries to take the lease until ctx is done, and while it holds it runs
// work with a context that is cancelled when the lease is lost. It releases
// the lease when ctx is done, so that another node takes over at once.
func (l *Lease) Run(ctx context.Context, work func(context.Context)) {
	every := l.ttl / 3
	for {
		rev, err := l.kv.Create(ctx, l.key, []byte(l.node))
		if err == nil {
			l.hold(ctx, rev, every, work)
		} else if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
			l.logger.Warn("lease not taken", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// hold runs work and renews the lease until either fails or ctx is done.
func (l *Lease) hold(ctx context.Context, rev uint64, every time.Duration, work func(context.Context)) {
	l.logger.Info("lease taken")
	l.held.Store(true)
	workCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); work(workCtx) }()
	defer func() {
		l.held.Store(false)
		stop()
		<-done
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
			defer cancel()
			l.kv.Delete(rctx, l.key, jetstream.LastRevision(rev))
			l.logger.Info("lease released")
			return
		case <-done:
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, every)
			next, err := l.kv.Update(rctx, l.key, []byte(l.node), rev)
			cancel()
			if err != nil {
				l.logger.Warn("lease lost", "err", err)
				return
			}
			rev = next
		}
	}
}
