// Package streamtest is the conformance suite every event-log backend
// passes: durable appends, per-key order, resumption after a crash without
// loss or repetition, dead letters that do not stop a partition, and, for a
// stream.GroupLog, partitions spread over the members of a group and moved
// when one leaves.
package streamtest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/stream"
)

// patience bounds how long the suite waits for a condition before it calls
// the backend hung. It is a guard against a test that never ends, not a
// measurement: no check depends on how fast a backend is.
const patience = 2 * time.Minute

// Backend is an event log under test, with the ways to reach it from
// outside the crmpulse.Log interface.
type Backend struct {
	// Open returns a Log on a new connection to the same log, and closes
	// it (and its connection) in a t.Cleanup.
	Open func(t *testing.T) crmpulse.Log
	// WriteRaw stores value on the event log as another producer would,
	// with this key where the log has keys, and no headers: the suite's
	// way of writing what a Log cannot decode.
	WriteRaw func(t *testing.T, key string, value []byte)
	// DeadLetters returns the first n dead letters, waiting for them until
	// ctx is done.
	DeadLetters func(ctx context.Context, t *testing.T, n int) []DeadLetter
}

// Options say which parts of the contract a backend takes on.
type Options struct {
	// Groups is set for a backend whose logs are stream.GroupLogs; the
	// consumer-group case runs only for those, and fails if the log is not
	// one.
	Groups bool
}

// DeadLetter is a record of the dead-letter destination.
type DeadLetter struct {
	Reason string // the reason header, never empty
	Value  []byte // the record's value as it was on the event log
}

// Run runs the suite. newBackend is called once per subtest and returns a
// new, empty log (a fresh server or cluster) that the subtest uses alone.
func Run(t *testing.T, opts Options, newBackend func(t *testing.T) Backend) {
	t.Run("AppendIsDurable", func(t *testing.T) { testDurable(t, newBackend(t)) })
	t.Run("KeyOrder", func(t *testing.T) { testKeyOrder(t, newBackend(t)) })
	t.Run("ResumeAfterCrash", func(t *testing.T) { testResume(t, newBackend(t)) })
	t.Run("DeadLetter", func(t *testing.T) { testDeadLetter(t, newBackend(t)) })
	if opts.Groups {
		t.Run("Group", func(t *testing.T) { testGroup(t, newBackend(t)) })
	}
}

// testDurable checks that what Append acknowledged is seen by a consumer on
// a new connection, after the appending Log was closed.
func testDurable(t *testing.T, b Backend) {
	ctx := testContext(t)
	want := makeEvents("durable", 50, 7)
	want[3].ID = "" // an identity derived from the content survives too

	log := b.Open(t)
	if err := log.Append(ctx, want); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if err := log.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	w := newWorker()
	stop := w.consume(t, b.Open(t))
	w.waitUntil(ctx, t, "every appended event", func() bool { return len(w.applied) >= len(want) })
	stop()
	checkExactlyOnce(t, w.records(), want)
}

// testKeyOrder checks that the events of one key (tenant, source, user)
// come back in the order they were appended, from one partition.
func testKeyOrder(t *testing.T, b Backend) {
	ctx := testContext(t)
	log := b.Open(t)
	want := makeEvents("order", 300, 5)
	// Several appends, each of several keys interleaved.
	for chunk := range 3 {
		if err := log.Append(ctx, want[chunk*100:(chunk+1)*100]); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}

	w := newWorker()
	stop := w.consume(t, log)
	w.waitUntil(ctx, t, "every appended event", func() bool { return len(w.applied) >= len(want) })
	stop()
	got := w.records()
	checkExactlyOnce(t, got, want)

	wantOrder := map[string][]string{}
	for i := range want {
		k := stream.PartitionKey(&want[i])
		wantOrder[k] = append(wantOrder[k], want[i].Identity())
	}
	gotOrder := map[string][]string{}
	partition := map[string]int32{}
	for _, r := range got {
		k := stream.PartitionKey(&r.Event)
		gotOrder[k] = append(gotOrder[k], r.Event.Identity())
		if p, ok := partition[k]; ok && p != r.Partition {
			t.Errorf("key %q in partitions %d and %d, want one", k, p, r.Partition)
		}
		partition[k] = r.Partition
	}
	for k, ids := range wantOrder {
		if got, want := fmt.Sprint(gotOrder[k]), fmt.Sprint(ids); got != want {
			t.Errorf("order of key %q:\n got %s\nwant %s", k, got, want)
		}
	}
}

// testResume crashes a consumer in the middle of the stream (its context
// is canceled while it handles a batch, which it does not apply), then
// consumes again on a new connection from the positions the handler had
// committed: every event is applied once.
func testResume(t *testing.T, b Backend) {
	ctx := testContext(t)
	log := b.Open(t)
	all := makeEvents("resume", 400, 9)
	// Deliveries of ten events: a log may keep each in one message.
	for i := 0; i < 300; i += 10 {
		if err := log.Append(ctx, all[i:i+10]); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}

	// The first run applies up to 150 events and commits their positions,
	// then crashes in the middle of a batch.
	w := newWorker()
	crashCtx, crash := context.WithCancel(ctx)
	w.crashAt, w.crash = 150, crash
	err := b.Open(t).Consume(crashCtx, w.resume, w.handle)
	if err == nil {
		t.Fatal("Consume returned nil after a crash, want an error")
	}
	w.crash = nil
	first := len(w.applied)
	if first == 0 || first > w.crashAt {
		t.Fatalf("first run applied %d events, want 1 to %d", first, w.crashAt)
	}

	// More events arrive while the worker is down.
	if err := log.Append(ctx, all[300:]); err != nil {
		t.Fatalf("Append: %v", err)
	}
	committed := w.positions()
	stop := w.consume(t, b.Open(t))
	w.waitUntil(ctx, t, "every appended event", func() bool { return len(w.applied) >= len(all) })
	stop()

	for _, r := range w.records()[first:] {
		if next, ok := committed[r.Partition]; ok && r.Offset < next {
			t.Errorf("after the crash, partition %d offset %d was delivered, want >= committed %d",
				r.Partition, r.Offset, next)
		}
	}
	checkExactlyOnce(t, w.records(), all)
}

// testDeadLetter writes records a Log cannot decode between good events of
// one key: they go to the dead letters with a reason, and the good events
// of the same key, before and after them, are delivered.
func testDeadLetter(t *testing.T, b Backend) {
	ctx := testContext(t)
	log := b.Open(t)
	want := makeEvents("dead", 4, 1)
	key := stream.PartitionKey(&want[0])
	if err := log.Append(ctx, want[:2]); err != nil {
		t.Fatalf("Append: %v", err)
	}
	garbage := [][]byte{
		[]byte("\x00\xffnot json at all"),
		[]byte(`{"tenant":"acme","user":"u-0","entity":"lead","action":"exploded"}`),
	}
	for _, g := range garbage {
		b.WriteRaw(t, key, g)
	}
	if err := log.Append(ctx, want[2:]); err != nil {
		t.Fatalf("Append: %v", err)
	}

	w := newWorker()
	stop := w.consume(t, log)
	w.waitUntil(ctx, t, "the events around the garbage", func() bool { return len(w.applied) >= len(want) })
	stop()
	checkExactlyOnce(t, w.records(), want)

	dead := b.DeadLetters(ctx, t, len(garbage))
	if len(dead) != len(garbage) {
		t.Fatalf("got %d dead letters, want %d", len(dead), len(garbage))
	}
	for i, d := range dead {
		if string(d.Value) != string(garbage[i]) {
			t.Errorf("dead letter %d value = %q, want %q", i, d.Value, garbage[i])
		}
		if d.Reason == "" {
			t.Errorf("dead letter %d has no reason", i)
		}
	}
}

// makeEvents returns n valid events spread over users, with ids that start
// with prefix, in the order of their times.
func makeEvents(prefix string, n, users int) []crmpulse.Event {
	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	events := make([]crmpulse.Event, n)
	for i := range events {
		action := crmpulse.Updated
		if i%3 == 0 {
			action = crmpulse.Created
		}
		events[i] = crmpulse.Event{
			ID:     fmt.Sprintf("%s-%04d", prefix, i),
			Tenant: "acme", Source: "api",
			User:     fmt.Sprintf("u-%d", i%users),
			UserName: fmt.Sprintf("User %d", i%users),
			Entity:   crmpulse.Entities[i%len(crmpulse.Entities)],
			Record:   fmt.Sprintf("R-%d", i%17), RecordName: "Cancity renewal",
			Action: action, Fields: []string{"stage"},
			At: at.Add(time.Duration(i) * time.Second),
		}
	}
	return events
}

// checkExactlyOnce checks that got holds each event of want once, equal to
// what was appended.
func checkExactlyOnce(t *testing.T, got []crmpulse.Record, want []crmpulse.Event) {
	t.Helper()
	wantByKey := make(map[string]string, len(want))
	for i := range want {
		wantByKey[want[i].Key()] = canonical(want[i])
	}
	seen := make(map[string]int, len(got))
	for _, r := range got {
		k := r.Event.Key()
		seen[k]++
		w, ok := wantByKey[k]
		switch {
		case !ok:
			t.Errorf("delivered an event never appended: %s", canonical(r.Event))
		case seen[k] == 2:
			t.Errorf("event %s applied more than once", r.Event.Identity())
		case seen[k] == 1 && canonical(r.Event) != w:
			t.Errorf("event changed on the log:\n got %s\nwant %s", canonical(r.Event), w)
		}
	}
	for k := range wantByKey {
		if seen[k] == 0 {
			t.Errorf("event %q lost", k)
		}
	}
}

// canonical renders e for comparison, with its identity as its id.
func canonical(e crmpulse.Event) string {
	e.Normalize()
	e.ID = e.Identity()
	b, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// testContext returns a context that ends with the test or after patience.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	t.Cleanup(cancel)
	return ctx
}
