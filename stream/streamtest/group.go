package streamtest

import (
	"context"
	"testing"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/stream"
)

// testGroup checks a stream.GroupLog: a second member takes a share of the
// partitions, a member that leaves hands its partitions to the other, each
// partition's batches reach only its owner, and a partition that moves
// resumes from the position the worker committed, so every event is applied
// once. The members share one worker state, as workers share a changelog.
func testGroup(t *testing.T, b Backend) {
	ctx := testContext(t)
	log := b.Open(t)
	if _, ok := log.(stream.GroupLog); !ok {
		t.Fatal("the backend said it has consumer groups, but its log is not a stream.GroupLog")
	}
	w := newWorker()
	owners := map[int32]string{} // guarded by w.mu
	count := func(name string) (n int) {
		for _, o := range owners {
			if o == name {
				n++
			}
		}
		return n
	}
	member := func(name string) (stop func()) {
		g := stream.Group{
			Resume: w.resume,
			Assigned: func(_ context.Context, parts []int32) {
				w.mu.Lock()
				defer w.mu.Unlock()
				for _, p := range parts {
					if o, ok := owners[p]; ok {
						t.Errorf("partition %d assigned to %s while %s owns it", p, name, o)
					}
					owners[p] = name
				}
				w.signal()
			},
			Revoked: func(_ context.Context, parts []int32) {
				w.mu.Lock()
				defer w.mu.Unlock()
				for _, p := range parts {
					if o := owners[p]; o != name {
						t.Errorf("partition %d revoked from %s, but %q owns it", p, name, o)
					}
					delete(owners, p)
				}
				w.signal()
			},
		}
		handle := func(ctx context.Context, batch []crmpulse.Record) error {
			w.mu.Lock()
			owner := owners[batch[0].Partition]
			w.mu.Unlock()
			if owner != name {
				t.Errorf("batch of partition %d delivered to %s, but %q owns it", batch[0].Partition, name, owner)
			}
			return w.handle(ctx, batch)
		}
		gl := b.Open(t).(stream.GroupLog)
		return w.run(t, func(ctx context.Context) error { return gl.ConsumeGroup(ctx, g, handle) })
	}
	appendAndApply := func(events []crmpulse.Event) {
		t.Helper()
		want := len(w.records()) + len(events)
		if err := log.Append(ctx, events); err != nil {
			t.Fatalf("Append: %v", err)
		}
		w.waitUntil(ctx, t, "every appended event", func() bool { return len(w.applied) >= want })
	}
	all := makeEvents("group", 300, 40)

	// One member owns every partition.
	stopA := member("a")
	w.waitUntil(ctx, t, "a first assignment", func() bool { return len(owners) > 0 })
	appendAndApply(all[:100])
	w.mu.Lock()
	n := len(owners)
	w.mu.Unlock()

	// A second member takes a share.
	stopB := member("b")
	defer stopB()
	w.waitUntil(ctx, t, "the partitions spread over two members", func() bool {
		return len(owners) == n && count("a") > 0 && count("b") > 0
	})
	appendAndApply(all[100:200])

	// The first leaves; the second takes over its partitions.
	stopA()
	w.waitUntil(ctx, t, "every partition moved to b", func() bool { return count("b") == n })
	appendAndApply(all[200:])

	checkExactlyOnce(t, w.records(), all)
}
