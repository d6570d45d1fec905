package aggregate

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Retention says how long the state keeps what it holds; a zero duration
// keeps it forever.
//
// Events past the Events horizon leave the reports: their columns, day
// chunks, seen keys and transactions are deleted, and the records' touch
// histories keep only the latest touch before the horizon. The horizon is
// the start of a UTC day, so whole day chunks go. Reports over periods
// that start at or after the horizon stay exact; a period that starts
// before it counts only the events after it, and distinct records before
// the horizon are not kept. A late event dated before the horizon is not
// applied and is counted in crmpulse_late_dropped_total.
//
// Transactions past the Transactions horizon keep counting in reports but
// leave the transaction list: their details (names, fields) are deleted.
// It is capped at the Events horizon.
type Retention struct {
	Events       time.Duration
	Transactions time.Duration
}

// Key of the retention state: the prefix, then 'e' for events or 't' for
// transactions; the value is the horizon the last pass finished (4 bytes)
// and the horizon it set out to reach (4 bytes), as stamps.
const prefixRetention = 'w'

// RetentionDays turns configured day counts into a Retention.
func RetentionDays(events, transactions int) Retention {
	return Retention{Events: time.Duration(events) * 24 * time.Hour,
		Transactions: time.Duration(transactions) * 24 * time.Hour}
}

// SetRetention sets what Expire keeps; it takes effect at the next Expire.
func (s *Store) SetRetention(r Retention) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.retention = r
}

// horizons is what the retention has reached: stamps before which events
// (and transaction details) are gone or going.
type horizons struct {
	eventsDone, events uint32
	txDone, tx         uint32
}

func retentionKey(kind byte) []byte { return []byte{prefixRetention, kind} }

func (s *Store) loadHorizons(txn *badger.Txn) error {
	for _, k := range []struct {
		kind       byte
		done, goal *uint32
	}{{'e', &s.horizons.eventsDone, &s.horizons.events}, {'t', &s.horizons.txDone, &s.horizons.tx}} {
		item, err := txn.Get(retentionKey(k.kind))
		if errors.Is(err, badger.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		err = item.Value(func(v []byte) error {
			if len(v) != 8 {
				return errCorrupt
			}
			*k.done, *k.goal = binary.BigEndian.Uint32(v), binary.BigEndian.Uint32(v[4:])
			return nil
		})
		if err != nil {
			return fmt.Errorf("retention state: %w", err)
		}
	}
	return nil
}

func (s *Store) saveHorizon(kind byte, done, goal uint32) error {
	v := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, done), goal)
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set(retentionKey(kind), v) })
}

// dayStart returns the stamp of the start of the UTC day holding t.
func dayStart(t time.Time) uint32 {
	st := boundStamp(t)
	if st == 0 {
		return 0
	}
	return (st-1)/secondsPerDay*secondsPerDay + 1
}

// Expire applies the retention at now: it moves the horizons and deletes
// what falls behind them, counting it in crmpulse_retention_dropped_total.
// Apply waits while it runs. A pass cut short by a crash is finished by
// the next one.
func (s *Store) Expire(now time.Time) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	r, h := s.retention, s.horizons
	if r.Events > 0 {
		if goal := dayStart(now.Add(-r.Events)); goal > h.events {
			h.events = goal
		}
	}
	if h.events > h.eventsDone {
		if err := s.expireEvents(h.eventsDone, h.events); err != nil {
			return err
		}
	}
	if r.Transactions > 0 {
		if goal := dayStart(now.Add(-r.Transactions)); goal > h.tx {
			h.tx = goal
		}
	}
	if h.tx > h.txDone && h.tx > h.events {
		if err := s.expireTransactions(max(h.txDone, h.events), h.tx); err != nil {
			return err
		}
	}
	return nil
}

// expireEvents drops the events in [done, goal). It first records the goal,
// so that from then on late events before it are refused and a restart
// loads nothing before it, then deletes and records the pass done.
func (s *Store) expireEvents(done, goal uint32) error {
	if err := s.fold(); err != nil {
		return err
	}
	if err := s.saveHorizon('e', done, goal); err != nil {
		return fmt.Errorf("save retention horizon: %w", err)
	}
	s.mu.Lock()
	s.horizons.events = goal
	dropped := s.trimColumns(goal)
	s.mu.Unlock()
	s.metrics.retentionDropped.WithLabelValues("events").Add(float64(dropped))

	txs, err := s.deleteTransactions(done, goal, true)
	if err != nil {
		return err
	}
	s.metrics.retentionDropped.WithLabelValues("transactions").Add(float64(txs))
	if err := s.deleteChunks(goal); err != nil {
		return err
	}
	if err := s.trimHistories(goal); err != nil {
		return err
	}
	if err := s.saveHorizon('e', goal, goal); err != nil {
		return fmt.Errorf("save retention horizon: %w", err)
	}
	s.horizons.eventsDone = goal
	s.logger.Info("retention applied", "kind", "events", "horizon", stampTime(goal), "dropped", dropped)
	return nil
}

// expireTransactions deletes the details of the transactions in [from,
// goal); their seen keys stay, and their index keys stay, empty, so that
// the events horizon finds them.
func (s *Store) expireTransactions(from, goal uint32) error {
	if err := s.saveHorizon('t', s.horizons.txDone, goal); err != nil {
		return fmt.Errorf("save retention horizon: %w", err)
	}
	s.mu.Lock()
	s.horizons.tx = goal
	s.mu.Unlock()
	n, err := s.deleteTransactions(from, goal, false)
	if err != nil {
		return err
	}
	s.metrics.retentionDropped.WithLabelValues("transactions").Add(float64(n))
	if err := s.saveHorizon('t', goal, goal); err != nil {
		return fmt.Errorf("save retention horizon: %w", err)
	}
	s.horizons.txDone = goal
	return nil
}

// trimColumns drops the in-memory events before goal and returns how many;
// the caller holds s.mu.
func (s *Store) trimColumns(goal uint32) int {
	// cut returns ts from goal on, in a new array so the old one is freed,
	// and how many stamps went.
	cut := func(ts []uint32) ([]uint32, int) {
		i := lowerBound(ts, goal)
		if i == 0 {
			return ts, 0
		}
		return append([]uint32(nil), ts[i:]...), i
	}
	dropped := 0
	for _, ser := range s.series {
		touches, deleted, restored := 0, 0, 0
		if i := lowerBound(ser.touch, goal); i > 0 {
			ser.prev = append([]uint32(nil), ser.prev[i:]...)
		}
		ser.touch, touches = cut(ser.touch)
		ser.created, _ = cut(ser.created) // created events are touches too
		ser.deleted, deleted = cut(ser.deleted)
		ser.restored, restored = cut(ser.restored)
		if touches > 0 {
			ser.ends.derive(ser.touch, ser.prev)
		}
		ser.latest = ser.lastStamp()
		dropped += touches + deleted + restored
	}
	s.events -= dropped
	if dropped > 0 {
		s.days.reset()
	}
	return dropped
}

// deleteTransactions deletes (or, when all is false, empties) the
// transaction index keys with event times in [from, goal), and with all
// their seen keys too, and returns how many held details.
func (s *Store) deleteTransactions(from, goal uint32, all bool) (int, error) {
	start := binary.BigEndian.AppendUint64([]byte{prefixTx}, sortableTime(stampTime(from).UnixNano()))
	end := sortableTime(stampTime(goal).UnixNano())
	if from == 0 {
		start = []byte{prefixTx}
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixTx}})
		defer it.Close()
		for it.Seek(start); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if binary.BigEndian.Uint64(k[1:9]) >= end {
				break
			}
			if item.ValueSize() > 0 {
				n++
			}
			var err error
			if all {
				if err = wb.Delete(item.KeyCopy(nil)); err == nil {
					err = wb.Delete(append([]byte{prefixSeen}, k[9:]...))
				}
			} else if item.ValueSize() > 0 {
				err = wb.Set(item.KeyCopy(nil), nil)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("expire transactions: %w", err)
	}
	if err := wb.Flush(); err != nil {
		return 0, fmt.Errorf("expire transactions: %w", err)
	}
	return n, nil
}

// deleteChunks deletes every series' day chunks before goal's day.
func (s *Store) deleteChunks(goal uint32) error {
	day := (goal - 1) / secondsPerDay
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixChunk}})
		defer it.Close()
		for it.Rewind(); it.Valid(); {
			k := it.Item().Key()
			if binary.BigEndian.Uint32(k[5:9]) < day {
				if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
					return err
				}
				it.Next()
				continue
			}
			// Skip to the next series.
			it.Seek(binary.BigEndian.AppendUint32([]byte{prefixChunk}, binary.BigEndian.Uint32(k[1:5])+1))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("expire chunks: %w", err)
	}
	return wb.Flush()
}

// trimHistories drops the touches before goal from the records' touch
// histories, keeping the latest of them, which the columns still hold as
// the previous touch of the record's first touch after goal. A record not
// touched since goal goes.
func (s *Store) trimHistories(goal uint32) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixHistory}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var stamps []uint32
			err := item.Value(func(v []byte) error {
				var ok bool
				if stamps, ok = decodeStamps(v); !ok {
					return errCorrupt
				}
				return nil
			})
			if err != nil {
				return err
			}
			i := lowerBound(stamps, goal)
			switch {
			case i == len(stamps):
				err = wb.Delete(item.KeyCopy(nil))
			case i > 1:
				err = wb.Set(item.KeyCopy(nil), encodeStamps(stamps[i-1:]))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("expire record histories: %w", err)
	}
	return wb.Flush()
}

func newRetentionMetrics() (*prometheus.CounterVec, prometheus.Counter) {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmpulse_retention_dropped_total",
			Help: "What the retention deleted: events from the reports, transactions from the list.",
		}, []string{"kind"}), prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crmpulse_late_dropped_total",
			Help: "Events dated before the retention horizon when they arrived: not applied.",
		})
}

// RunRetention applies the retention now and then every interval until ctx
// is done. A failed pass is logged and retried at the next interval.
func (s *Store) RunRetention(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Expire(time.Now()); err != nil {
			s.logger.Error("retention pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
