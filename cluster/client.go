package cluster

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/aggregate"
	"github.com/crmpulse/crmpulse/web"
)

// defaultTimeout bounds a query's wait for the workers' answers, and the
// bucket operations.
const defaultTimeout = 2 * time.Second

// ClientConfig configures a Client.
type ClientConfig struct {
	Conn *nats.Conn
	// Shared gives the directory revision and the partition count; nil
	// means neither (tests).
	Shared *Shared
	// Partitions is the partition count used until the shared setting is
	// known.
	Partitions int32
	// Timeout is how long a query waits for the partitions' answers
	// (default 2 s). A partition not answered by then is missing.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Client answers queries by scatter-gather to the workers; it is the
// web.Source of a web node, and the alert evaluator's activity reader.
// Its methods may be called concurrently.
type Client struct {
	cfg    ClientConfig
	logger *slog.Logger
}

var _ web.Source = (*Client)(nil)

// NewClient returns a client.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, logger: cfg.Logger.With("component", "cluster")}
}

// Partitions returns how many partitions the state has.
func (c *Client) Partitions() int32 {
	if c.cfg.Shared != nil {
		if v, ok := c.cfg.Shared.Setting(SettingPartitions); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return int32(n)
			}
		}
	}
	return c.cfg.Partitions
}

// gather sends req on subject and collects one answer per partition until
// every partition (but those in skip) has answered or the deadline passes.
// Of two answers for a partition it keeps the more advanced. It returns
// the partitions nobody answered for.
func (c *Client) gather(subject string, req request, skip []int32) (map[int32]answer, []int32) {
	n := c.Partitions()
	if c.cfg.Shared != nil {
		req.Revision = c.cfg.Shared.Revision()
	}
	deadline := time.Now().Add(c.cfg.Timeout)
	req.Deadline = deadline
	want := int(n) - len(skip)
	got := map[int32]answer{}
	data, _ := json.Marshal(req)
	nc := c.cfg.Conn
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err == nil {
		defer sub.Unsubscribe()
		err = nc.PublishRequest(subject, inbox, data)
	}
	if err != nil {
		c.logger.Warn("query not sent", "subject", subject, "err", err)
	}
	for err == nil && len(got) < want {
		var m *nats.Msg
		if m, err = sub.NextMsg(time.Until(deadline)); err != nil {
			break
		}
		var a answer
		if json.Unmarshal(m.Data, &a) != nil || a.Error != "" || a.Partition < 0 || a.Partition >= n ||
			slices.Contains(skip, a.Partition) {
			continue
		}
		if old, ok := got[a.Partition]; !ok || a.Position > old.Position {
			got[a.Partition] = a
		}
	}
	var missing []int32
	for p := range n {
		if _, ok := got[p]; !ok && !slices.Contains(skip, p) {
			missing = append(missing, p)
		}
	}
	return got, missing
}

func names(parts []int32) []string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = strconv.Itoa(int(p))
	}
	return out
}

// Report asks every partition for its report of q and merges them. A
// partition that did not answer in time is listed in MissingPartitions,
// and the report is Partial.
func (c *Client) Report(q aggregate.Query, dir crmpulse.Directory) aggregate.Report {
	got, missing := c.gather(SubjectReport, request{Query: toWire(q)}, nil)
	parts := make([]aggregate.Report, 0, len(got))
	for _, p := range slices.Sorted(maps.Keys(got)) {
		if r := got[p].Report; r != nil {
			parts = append(parts, *r)
		}
	}
	if len(missing) > 0 {
		c.logger.Debug("report partial", "missing", missing)
	}
	return aggregate.Merge(q, dir, parts, names(missing))
}

// Missing returns the partitions that do not answer now: the cheapest
// query there is (no rows, one second).
func (c *Client) Missing() []int32 {
	now := time.Now().UTC().Truncate(time.Second)
	q := aggregate.Query{Only: map[string]bool{},
		Bounds: crmpulse.Bounds{Name: crmpulse.PeriodCustom, From: now, To: now.Add(time.Second), Loc: time.UTC}}
	_, missing := c.gather(SubjectReport, request{Query: toWire(q)}, nil)
	return missing
}

// pageCursor is a transactions cursor of the cluster: where each
// partition continues, and which are exhausted.
type pageCursor struct {
	Cursors map[int32]string `json:"c,omitempty"`
	Done    []int32          `json:"d,omitempty"`
}

func decodeCursor(s string) (pageCursor, error) {
	var pc pageCursor
	if s == "" {
		return pc, nil
	}
	data, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(data, &pc) != nil {
		return pc, aggregate.ErrBadCursor
	}
	return pc, nil
}

func (pc pageCursor) encode() string {
	data, _ := json.Marshal(pc)
	return base64.RawURLEncoding.EncodeToString(data)
}

type sourcedTransaction struct {
	aggregate.Transaction
	partition int32
}

// Transactions returns a page of q's transactions newest first, merged
// from every partition's own page. The cursor carries each partition's
// position in its scan. It returns web.ErrUnavailable when a partition
// that is not exhausted did not answer: a page that silently skipped a
// partition could never be completed.
func (c *Client) Transactions(q aggregate.Query, dir crmpulse.Directory, cursor string, limit int) ([]aggregate.Transaction, string, error) {
	pc, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	// A partition's cursor is checked here, so that a wrong one is the
	// client's error and not a partition that did not answer.
	for _, pcur := range pc.Cursors {
		if err := aggregate.CheckCursor(q, pcur); err != nil {
			return nil, "", err
		}
	}
	got, missing := c.gather(SubjectTransactions,
		request{Query: toWire(q), Cursors: pc.Cursors, Done: pc.Done, Limit: limit}, pc.Done)
	if len(missing) > 0 {
		return nil, "", fmt.Errorf("partitions %s: %w", strings.Join(names(missing), ","), web.ErrUnavailable)
	}
	var all []sourcedTransaction
	for p, a := range got {
		for _, t := range a.Items {
			all = append(all, sourcedTransaction{t, p})
		}
	}
	slices.SortFunc(all, func(a, b sourcedTransaction) int {
		return cmp.Or(aggregate.CompareTransactions(a.Transaction, b.Transaction), cmp.Compare(a.partition, b.partition))
	})
	all = all[:min(len(all), limit)]
	next := pageCursor{Cursors: map[int32]string{}, Done: slices.Clone(pc.Done)}
	taken := map[int32]int{}
	items := make([]aggregate.Transaction, len(all))
	for i, t := range all {
		items[i] = t.Transaction
		taken[t.partition]++
		next.Cursors[t.partition] = aggregate.TransactionCursor(t.Transaction)
	}
	for p, a := range got {
		switch {
		case taken[p] == len(a.Items) && !a.More:
			next.Done = append(next.Done, p)
			delete(next.Cursors, p)
		case taken[p] == 0 && pc.Cursors[p] != "":
			next.Cursors[p] = pc.Cursors[p]
		}
	}
	if len(next.Done) == int(c.Partitions()) {
		return items, "", nil
	}
	slices.Sort(next.Done)
	return items, next.encode(), nil
}

// EachTransaction calls visit for every transaction of q, newest first,
// until visit returns false, reading pages of 500.
func (c *Client) EachTransaction(q aggregate.Query, dir crmpulse.Directory, visit func(aggregate.Transaction) bool) error {
	cursor := ""
	for {
		items, next, err := c.Transactions(q, dir, cursor, 500)
		if err != nil {
			return err
		}
		for _, t := range items {
			if !visit(t) {
				return nil
			}
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

// LastActivity returns each row's latest event time before to; see
// aggregate.Store.LastActivity. Rows of missing partitions are left out,
// so a caller that judges inactivity checks Missing first.
func (c *Client) LastActivity(dir crmpulse.Directory, source string, from, to time.Time) []aggregate.Activity {
	q := aggregate.Query{Source: source, Bounds: crmpulse.Bounds{Name: crmpulse.PeriodCustom, From: from, To: to, Loc: time.UTC}}
	var out []aggregate.Activity
	for _, r := range c.Report(q, dir).Users {
		if r.LastActivity != nil {
			out = append(out, aggregate.Activity{ID: r.ID, Status: r.Status, Last: *r.LastActivity})
		}
	}
	return out
}

// SourceActivity returns the latest event time before to of every source,
// from every partition; it fails when a partition does not answer.
func (c *Client) SourceActivity(dir crmpulse.Directory, to time.Time) (map[string]time.Time, error) {
	q := aggregate.Query{Bounds: crmpulse.Bounds{Name: crmpulse.PeriodCustom, From: time.Unix(0, 0), To: to, Loc: time.UTC}}
	got, missing := c.gather(SubjectSources, request{Query: toWire(q)}, nil)
	if len(missing) > 0 {
		return nil, fmt.Errorf("source activity: partitions %s: %w", strings.Join(names(missing), ","), web.ErrUnavailable)
	}
	out := map[string]time.Time{}
	for _, a := range got {
		for s, t := range a.Sources {
			if t.After(out[s]) {
				out[s] = t
			}
		}
	}
	return out, nil
}
