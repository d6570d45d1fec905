package web

import (
	"errors"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/aggregate"
)

// Source answers the queries of the API and the live view. In the
// one-process shape it is the local *aggregate.Store; in the many-process
// shape it is the cluster client, which asks the workers. Its methods may
// be called concurrently.
type Source interface {
	// Report computes the report of q. A source that could not reach
	// part of the state says so in the report (Partial and
	// MissingPartitions) rather than failing.
	Report(q aggregate.Query, dir crmpulse.Directory) aggregate.Report
	// Transactions returns a page of q's transactions, newest first; see
	// aggregate.Store.Transactions. It returns aggregate.ErrBadCursor for
	// a cursor it did not hand out, aggregate.ErrCursorPeriod for one of
	// a page outside q's period, and ErrUnavailable when part of the
	// state could not answer.
	Transactions(q aggregate.Query, dir crmpulse.Directory, cursor string, limit int) ([]aggregate.Transaction, string, error)
	// EachTransaction calls visit for every transaction of q, newest
	// first, until visit returns false.
	EachTransaction(q aggregate.Query, dir crmpulse.Directory, visit func(aggregate.Transaction) bool) error
	// LastActivity returns each row's latest event time; see
	// aggregate.Store.LastActivity.
	LastActivity(dir crmpulse.Directory, source string, from, to time.Time) []aggregate.Activity
}

var _ Source = (*aggregate.Store)(nil)

// ErrUnavailable is returned by a Source when part of the state (a log
// partition with no owner) could not answer; a list of transactions that
// would miss some is not given at all.
var ErrUnavailable = errors.New("part of the state is not available")
