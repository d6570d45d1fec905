package streamtest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/crmpulse/crmpulse"
)

// worker stands in for a stream worker: it applies batches to its state
// and commits each partition's position with them, atomically.
type worker struct {
	mu      sync.Mutex
	next    map[int32]int64   // committed position: the offset to resume at
	applied []crmpulse.Record // in the order applied
	changed chan struct{}     // signalled after every change, capacity 1
	failed  error             // why a consumer stopped on its own

	// crash, when set, is called once crashAt events are applied; the
	// batch that reaches crashAt is applied only up to it.
	crashAt int
	crash   func()
}

func newWorker() *worker {
	return &worker{next: map[int32]int64{}, changed: make(chan struct{}, 1)}
}

func (w *worker) resume(p int32) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next[p]
}

func (w *worker) handle(ctx context.Context, batch []crmpulse.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	defer w.signal()
	crashing := w.crash != nil && len(w.applied)+len(batch) >= w.crashAt
	if crashing {
		// The crash loses what was applied of a message whose records
		// were not all applied, as a store's transaction would.
		cut := w.crashAt - len(w.applied)
		for cut > 0 && cut < len(batch) && batch[cut].Offset == batch[cut-1].Offset {
			cut--
		}
		batch = batch[:cut]
	}
	for _, r := range batch {
		w.applied = append(w.applied, r)
		w.next[r.Partition] = r.Offset + 1
	}
	if crashing {
		w.crash()
		return context.Cause(ctx)
	}
	return nil
}

// signal wakes a waitUntil; the caller changed the worker.
func (w *worker) signal() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *worker) records() []crmpulse.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.applied)
}

func (w *worker) positions() map[int32]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.next)
}

// waitUntil waits until cond, called with the worker locked, holds.
func (w *worker) waitUntil(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for {
		w.mu.Lock()
		ok, failed := cond(), w.failed
		w.mu.Unlock()
		if ok {
			return
		}
		if failed != nil {
			t.Fatalf("waiting for %s: consumer failed: %v", what, failed)
		}
		select {
		case <-w.changed:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

// consume runs log.Consume from the worker's positions until the returned
// stop is called; stop waits for Consume to return and fails the test if it
// failed for another reason than being stopped.
func (w *worker) consume(t *testing.T, log crmpulse.Log) (stop func()) {
	t.Helper()
	return w.run(t, func(ctx context.Context) error { return log.Consume(ctx, w.resume, w.handle) })
}

// run calls fn in a goroutine until the returned stop is called. An error
// of fn other than its cancellation ends any waitUntil.
func (w *worker) run(t *testing.T, fn func(ctx context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		err := fn(ctx)
		if err != nil && ctx.Err() == nil {
			w.mu.Lock()
			w.failed = err
			w.mu.Unlock()
			w.signal()
		}
		done <- err
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("consumer failed: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
