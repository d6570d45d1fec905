// Package cluster is the many-process shape's glue over NATS: the workers
// answer queries for the log partitions they own (Worker), the web nodes
// ask them all and merge the answers by partition (Client), every node
// shares the directory and the settings through a JetStream key-value
// bucket (Shared), and one node at a time holds the lease that lets it
// evaluate the inactivity alerts (Lease).
//
// A query is scatter-gather: the web node publishes it once on a subject
// every worker listens to, and each worker answers with one message per
// partition it serves. The web node takes one answer per partition (the
// most advanced one, should two workers briefly answer for the same
// partition during a rebalance), so nothing is counted twice, and reports
// the partitions nobody answered for before the deadline as missing.
package cluster

import (
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/aggregate"
)

// Subjects of the query protocol.
const (
	SubjectReport       = "crmpulse.query.report"
	SubjectTransactions = "crmpulse.query.transactions"
	SubjectSources      = "crmpulse.query.sources"
)

// wireQuery is an aggregate.Query on the wire: the zone by name.
type wireQuery struct {
	Name   string    `json:"name"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	TZ     string    `json:"tz"`
	Tenant string    `json:"tenant,omitempty"`
	Team   string    `json:"team,omitempty"`
	Office string    `json:"office,omitempty"`
	User   string    `json:"user,omitempty"`
	Entity string    `json:"entity,omitempty"`
	Source string    `json:"source,omitempty"`
	Action string    `json:"action,omitempty"`
	Only   []string  `json:"only,omitempty"`
}

func toWire(q aggregate.Query) wireQuery {
	w := wireQuery{Name: q.Bounds.Name, From: q.Bounds.From, To: q.Bounds.To, TZ: "UTC",
		Tenant: q.Tenant, Team: q.Team, Office: q.Office, User: q.User,
		Entity: q.Entity, Source: q.Source, Action: q.Action}
	if q.Bounds.Loc != nil {
		w.TZ = q.Bounds.Loc.String()
	}
	if q.Only != nil {
		w.Only = []string{}
		for id, ok := range q.Only {
			if ok {
				w.Only = append(w.Only, id)
			}
		}
	}
	return w
}

func (w wireQuery) query() (aggregate.Query, error) {
	loc, err := time.LoadLocation(w.TZ)
	if err != nil {
		return aggregate.Query{}, err
	}
	q := aggregate.Query{Bounds: crmpulse.Bounds{Name: w.Name, From: w.From, To: w.To, Loc: loc},
		Tenant: w.Tenant, Team: w.Team, Office: w.Office, User: w.User,
		Entity: w.Entity, Source: w.Source, Action: w.Action}
	if w.Only != nil {
		q.Only = map[string]bool{}
		for _, id := range w.Only {
			q.Only[id] = true
		}
	}
	return q, nil
}

// request is what a web node asks. Revision is the web node's revision of
// the shared directory: a worker brings its own copy up to it before
// answering, so rows resolve the same on both sides.
type request struct {
	Query    wireQuery        `json:"query"`
	Revision uint64           `json:"revision,omitempty"`
	Cursors  map[int32]string `json:"cursors,omitempty"` // transactions: where each partition continues
	Done     []int32          `json:"done,omitempty"`    // transactions: partitions already exhausted
	Limit    int              `json:"limit,omitempty"`
	// Deadline is when the web node stops waiting: a worker drops a query
	// it gets to later, rather than add to its load for nobody.
	Deadline time.Time `json:"deadline"`
}

// answer is one partition's reply. Position is the last offset applied to
// the partition's state, so that of two answers for one partition the
// more advanced is kept.
type answer struct {
	Partition int32                   `json:"partition"`
	Position  int64                   `json:"position"`
	Report    *aggregate.Report       `json:"report,omitempty"`
	Items     []aggregate.Transaction `json:"items,omitempty"`
	More      bool                    `json:"more,omitempty"`
	Sources   map[string]time.Time    `json:"sources,omitempty"`
	Error     string                  `json:"error,omitempty"`
}
