package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/aggregate"
	"github.com/crmpulse/crmpulse/stream"
)

// unknownEnd marks a restore whose end could not be read yet.
const unknownEnd = 1<<63 - 1

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	// Log is the event log; the worker joins its consumer group.
	Log stream.GroupLog
	// End returns the offset of the last record of each partition: a newly
	// assigned partition serves queries once its state has reached it.
	End func(ctx context.Context) (map[int32]int64, error)
	// Partitions holds the state of each partition this worker owns.
	Partitions *aggregate.Partitions
	// Conn carries the queries and the deltas.
	Conn *nats.Conn
	// Directory resolves the rows of the reports; Shared keeps it in step
	// with the web nodes' (nil in tests with a fixed directory).
	Directory crmpulse.Directory
	Shared    *Shared
	// Applied, when set, is called with the events each batch applied.
	Applied func([]crmpulse.Event)
	Logger  *slog.Logger
}

// Worker is a member of the workers' consumer group. It keeps the state of
// the partitions the group assigns to it, each in a store of its own;
// restores a newly assigned partition before it serves it (resuming from
// the position its earlier ownership left on disk, else replaying the
// partition from its start); stops answering for a partition the moment it
// is revoked; answers the web nodes' queries for the partitions it serves;
// and publishes the events it applies on crmpulse.DeltaSubject.
type Worker struct {
	cfg    WorkerConfig
	logger *slog.Logger

	// queries bounds the queries computed at once; the others wait.
	queries chan struct{}

	mu      sync.Mutex
	serving map[int32]bool
	target  map[int32]int64 // offset a restoring partition must reach
}

// NewWorker returns a worker; Run starts it.
func NewWorker(cfg WorkerConfig) *Worker {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Worker{cfg: cfg, logger: cfg.Logger.With("component", "worker"),
		serving: map[int32]bool{}, target: map[int32]int64{},
		queries: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))}
}

// Run answers queries and consumes the partitions assigned to this worker
// until ctx is done or the state cannot be written. On return the worker
// has left the group and its partitions are closed.
func (w *Worker) Run(ctx context.Context) error {
	for subject, handle := range map[string]func(*request) []answer{
		SubjectReport: w.report, SubjectTransactions: w.transactions, SubjectSources: w.sources,
	} {
		sub, err := w.cfg.Conn.Subscribe(subject, func(m *nats.Msg) { go w.answer(ctx, m, handle) })
		if err != nil {
			return fmt.Errorf("subscribe to %s: %w", subject, err)
		}
		defer sub.Unsubscribe()
	}
	defer w.cfg.Partitions.CloseAll()
	return w.cfg.Log.ConsumeGroup(ctx, stream.Group{
		Resume:   w.cfg.Partitions.Resume,
		Assigned: w.assigned,
		Revoked:  w.revoked,
	}, w.apply)
}

// Serving returns the partitions this worker answers for.
func (w *Worker) Serving() []int32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []int32
	for p, ok := range w.serving {
		if ok {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func (w *Worker) isServing(p int32) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.serving[p]
}

// assigned opens the state of each partition and notes where its restore
// ends: the log's last offset now. A partition whose state already reaches
// it serves at once.
func (w *Worker) assigned(ctx context.Context, parts []int32) {
	end, err := w.end(ctx)
	for _, p := range parts {
		store, oerr := w.cfg.Partitions.Open(p)
		if oerr != nil {
			// Nothing is applied nor served for p; the handler fails on
			// its first batch, which stops the worker.
			w.logger.Error("partition state not opened", "partition", p, "err", oerr)
			continue
		}
		last, known := end[p]
		from := store.Resume(p)
		w.mu.Lock()
		switch {
		case err == nil && (!known || from > last):
			w.serving[p] = true
			delete(w.target, p)
		default:
			if err != nil {
				last = unknownEnd // read again at the first batch
			}
			w.target[p] = last
		}
		w.mu.Unlock()
		w.logger.Info("partition assigned", "partition", p, "from", from, "restore_to", last, "serving", w.isServing(p))
	}
}

func (w *Worker) end(ctx context.Context) (map[int32]int64, error) {
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		end, err := w.cfg.End(ctx)
		cancel()
		if err == nil || attempt == 2 || ctx.Err() != nil {
			if err != nil {
				w.logger.Warn("log end not read", "err", err)
			}
			return end, err
		}
	}
}

// revoked stops answering for the partitions at once, then closes their
// state, keeping it on disk for a later assignment.
func (w *Worker) revoked(_ context.Context, parts []int32) {
	w.mu.Lock()
	for _, p := range parts {
		delete(w.serving, p)
		delete(w.target, p)
	}
	w.mu.Unlock()
	for _, p := range parts {
		if err := w.cfg.Partitions.Close(p); err != nil {
			w.logger.Error("partition state not closed", "partition", p, "err", err)
		}
		w.logger.Info("partition revoked", "partition", p)
	}
}

// apply applies a batch of one partition. While the partition is being
// restored, what the previous owner already applied and published is
// applied without publishing; the first record past the restore's end
// makes the partition serve, and from there events are published.
func (w *Worker) apply(ctx context.Context, batch []crmpulse.Record) error {
	p := batch[0].Partition
	store := w.cfg.Partitions.Store(p)
	if store == nil {
		return fmt.Errorf("partition %d: %w", p, aggregate.ErrNotOwned)
	}
	w.mu.Lock()
	target, restoring := w.target[p]
	w.mu.Unlock()
	if restoring && target == unknownEnd {
		if end, err := w.end(ctx); err == nil {
			target = end[p]
			w.mu.Lock()
			w.target[p] = target
			w.mu.Unlock()
		}
	}
	if restoring {
		i, _ := slices.BinarySearchFunc(batch, target+1, func(r crmpulse.Record, off int64) int {
			return cmp.Compare(r.Offset, off)
		})
		if _, err := store.Apply(ctx, batch[:i]); err != nil {
			return err
		}
		// A record past the end also ends the restore: the end may be a
		// record the consumer never sees (a transaction marker).
		if store.Resume(p) <= target && i == len(batch) {
			return nil
		}
		w.mu.Lock()
		delete(w.target, p)
		w.serving[p] = true
		w.mu.Unlock()
		w.logger.Info("partition restored", "partition", p, "offset", store.Resume(p)-1)
		batch = batch[i:]
		if len(batch) == 0 {
			return nil
		}
	}
	fresh, err := store.Apply(ctx, batch)
	if err != nil {
		return err
	}
	if len(fresh) > 0 {
		if w.cfg.Applied != nil {
			w.cfg.Applied(fresh)
		}
		w.cfg.Conn.Publish(crmpulse.DeltaSubject, stream.AppendBatch(nil, fresh))
	}
	return nil
}

// answer runs one query and sends one message per partition served.
func (w *Worker) answer(ctx context.Context, m *nats.Msg, handle func(*request) []answer) {
	var req request
	if err := json.Unmarshal(m.Data, &req); err != nil {
		w.logger.Debug("query not readable", "err", err)
		return
	}
	ctx, cancel := context.WithDeadline(ctx, req.Deadline)
	defer cancel()
	select {
	case w.queries <- struct{}{}:
		defer func() { <-w.queries }()
	case <-ctx.Done():
		w.logger.Debug("query dropped: its deadline passed")
		return
	}
	if req.Revision > 0 && w.cfg.Shared != nil {
		wctx, cancel := context.WithTimeout(ctx, defaultTimeout/2)
		ok := w.cfg.Shared.WaitRevision(wctx, req.Revision)
		cancel()
		if !ok {
			return // not in step with the directory: let the partitions count as missing
		}
	}
	for _, a := range handle(&req) {
		data, err := json.Marshal(a)
		if err == nil {
			err = m.Respond(data)
		}
		if err != nil {
			w.logger.Warn("answer not sent", "partition", a.Partition, "err", err)
		}
	}
}

// each runs fn on the store of every partition served, holding each open
// while fn runs, and returns one answer per partition.
func (w *Worker) each(fn func(p int32, s *aggregate.Store, a *answer) error) []answer {
	var out []answer
	for _, p := range w.Serving() {
		a := answer{Partition: p}
		err := w.cfg.Partitions.View(p, func(s *aggregate.Store) error {
			if !w.isServing(p) {
				return aggregate.ErrNotOwned
			}
			a.Position = s.Resume(p) - 1
			return fn(p, s, &a)
		})
		switch {
		case errors.Is(err, aggregate.ErrNotOwned):
			continue
		case err != nil:
			w.logger.Error("query failed", "partition", p, "err", err)
			a = answer{Partition: p, Error: err.Error()}
		}
		out = append(out, a)
	}
	return out
}

func (w *Worker) report(req *request) []answer {
	q, err := req.Query.query()
	if err != nil {
		return nil
	}
	return w.each(func(_ int32, s *aggregate.Store, a *answer) error {
		rep := s.Report(q, w.cfg.Directory)
		rep.Trim()
		a.Report = &rep
		return nil
	})
}

func (w *Worker) transactions(req *request) []answer {
	q, err := req.Query.query()
	if err != nil || req.Limit <= 0 {
		return nil
	}
	return w.each(func(p int32, s *aggregate.Store, a *answer) error {
		if slices.Contains(req.Done, p) {
			return aggregate.ErrNotOwned
		}
		items, next, err := s.Transactions(q, w.cfg.Directory, req.Cursors[p], req.Limit)
		a.Items, a.More = items, next != ""
		return err
	})
}

func (w *Worker) sources(req *request) []answer {
	q, err := req.Query.query()
	if err != nil {
		return nil
	}
	return w.each(func(_ int32, s *aggregate.Store, a *answer) error {
		var err error
		a.Sources, err = s.SourceActivity(w.cfg.Directory, q.Bounds.To)
		return err
	})
}
