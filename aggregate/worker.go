package aggregate

import (
	"context"
	"log/slog"

	"github.com/crmpulse/crmpulse"
)

// Worker consumes the log into the store. After each committed batch it
// hands the new events to publish, which sends them on the delta bus.
type Worker struct {
	log     crmpulse.Log
	store   *Store
	publish func([]crmpulse.Event)
	logger  *slog.Logger
}

// NewWorker returns a worker; publish may be nil.
func NewWorker(log crmpulse.Log, store *Store, publish func([]crmpulse.Event), logger *slog.Logger) *Worker {
	if publish == nil {
		publish = func([]crmpulse.Event) {}
	}
	return &Worker{log: log, store: store, publish: publish, logger: logger.With("component", "worker")}
}

// Run consumes until ctx is done or the state cannot be written.
func (w *Worker) Run(ctx context.Context) error {
	return w.log.Consume(ctx, w.store.Resume, func(ctx context.Context, batch []crmpulse.Record) error {
		fresh, err := w.store.Apply(ctx, batch)
		if err != nil {
			return err
		}
		if len(fresh) > 0 {
			w.publish(fresh)
		}
		return nil
	})
}
