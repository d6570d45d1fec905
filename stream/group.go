package stream

import (
	"context"

	"github.com/crmpulse/crmpulse"
)

// Group is what a member of a consumer group is told while it consumes:
// which partitions it gained or lost, and where to start in each one.
//
// The callbacks of one member are called one at a time, never while a
// batch of that member is being handled, so a worker can treat them as
// steps between batches. For a partition, the order is Assigned, then
// Resume, then batches, then Revoked; a partition may be assigned again
// later, and Resume is asked again each time.
type Group struct {
	// Resume gives the offset of the first record to deliver in a newly
	// assigned partition: the position the worker committed in its own
	// state. The log's own record of positions (Kafka's committed offsets)
	// is never used, since it can run ahead of or behind the worker's state.
	Resume crmpulse.ResumeFunc
	// Assigned, if set, is called with the partitions this member has just
	// been given, before any of their records are delivered. A worker
	// rebuilds their state here.
	Assigned func(ctx context.Context, partitions []int32)
	// Revoked, if set, is called with the partitions this member no longer
	// owns, after the last batch of them has been handled, and before any
	// other member can be given them. It is also called for the member's
	// partitions when it leaves the group, and when they were lost to a
	// session timeout (another member may then already own them).
	Revoked func(ctx context.Context, partitions []int32)
}

// GroupLog is a crmpulse.Log whose partitions can be spread over the members
// of a consumer group, the unit of work of the many-process shape. Only the
// Kafka backend has it: the JetStream log of the one-process shape has a
// single partition and a single worker, so it has nothing to spread.
//
// ConsumeGroup joins the group and delivers the batches of the partitions
// assigned to this member until ctx is done or the handler fails, then
// leaves the group; as with Consume, batches are per partition and in log
// order, and undecodable records go to the dead letters. A member that
// leaves hands its partitions to the others. It may be called concurrently
// with the other methods, and more than once on one Log: each call is a
// member of its own.
type GroupLog interface {
	crmpulse.Log
	ConsumeGroup(ctx context.Context, g Group, handle crmpulse.BatchHandler) error
}
