// Package alert watches the latest activity of every person of the
// directory against their working calendars, and notifies webhooks, Slack,
// Microsoft Teams and e-mail when someone stops using the CRM, or when a
// source stops sending events at all.
//
// Each (rule, person) and (rule, source) pair moves through ok, pending,
// firing and resolved. A notification goes out once per firing, again every
// repeat interval while it fires, and a resolve notice follows activity.
// States and undelivered notifications are kept in Badger under "alert/",
// so a restart neither re-sends nor forgets.
package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/aggregate"
	"github.com/crmpulse/crmpulse/config"
)

// Delivery retries.
const (
	// firstRetry is the wait after a first failed delivery; each further
	// failure doubles it up to maxRetryWait.
	firstRetry   = 30 * time.Second
	maxRetryWait = time.Hour
	// maxAttempts is how often a notification is tried before it is
	// dropped (counted with result "dropped"): about a day of retries.
	maxAttempts = 30
)

// minSourceUsers is how many users (people who have not left, and
// unmapped ids) a source must have seen acting before its silence is an
// alert of its own: the silence of a source with one user is that user's
// inactivity.
const minSourceUsers = 2

// ActivityReader is the part of the aggregate state the evaluator reads;
// *aggregate.Store implements it. Its methods may be called concurrently
// with the workers' writes.
type ActivityReader interface {
	LastActivity(dir crmpulse.Directory, source string, from, to time.Time) []aggregate.Activity
	SourceActivity(dir crmpulse.Directory, to time.Time) (map[string]time.Time, error)
}

// Config is what the evaluator is told.
type Config struct {
	Alerts config.Alerts
	// Calendar is the default working calendar, and Location the
	// organisation's zone: people without their own use them, and a
	// source's silence is measured in them.
	Calendar crmpulse.Calendar
	Location *time.Location
	// Interval is the time between evaluations (default 30 s).
	Interval time.Duration
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
	// Getenv reads SMTP credentials (default os.Getenv).
	Getenv func(string) string
	// HTTPClient posts to webhooks (default: a client with a 10 s timeout).
	HTTPClient *http.Client
	// OnChange, when set, is called with every state that changed, for
	// the live websocket. It must not block.
	OnChange func(State)
}

// Evaluator evaluates the rules periodically and delivers notifications.
// Run owns its goroutine; Evaluate and Snapshot may be called concurrently.
type Evaluator struct {
	cfg      Config
	db       *badger.DB
	reader   ActivityReader
	dir      crmpulse.Directory
	logger   *slog.Logger
	calendar config.WorkingCalendar
	targets  map[string]Target

	sent   *prometheus.CounterVec
	states *prometheus.GaugeVec

	evalMu  sync.Mutex // one evaluation at a time
	mu      sync.RWMutex
	records map[string]*record
	sources map[string]time.Time
	learned bool
}

// New returns an evaluator over the state in db, which the caller owns and
// closes after Run has returned. It loads the stored alert states.
func New(cfg Config, db *badger.DB, reader ActivityReader, dir crmpulse.Directory,
	reg prometheus.Registerer, logger *slog.Logger) (*Evaluator, error) {
	cfg = withDefaults(cfg)
	cal, err := config.ParseCalendar(&cfg.Calendar, nil, cfg.Location)
	if err != nil {
		return nil, fmt.Errorf("calendar: %w", err)
	}
	e := &Evaluator{cfg: cfg, db: db, reader: reader, dir: dir, calendar: cal,
		logger: logger.With("component", "alert"), targets: map[string]Target{},
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmpulse_alert_notifications_total",
			Help: "Alert notifications by target and result (sent, failed, dropped).",
		}, []string{"target", "result"}),
		states: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crmpulse_alert_states", Help: "Alert states by state (pending, firing, resolved).",
		}, []string{"state"}),
	}
	for _, t := range cfg.Alerts.Targets {
		if e.targets[t.Name], err = NewTarget(t, cfg.HTTPClient, cfg.Getenv); err != nil {
			return nil, err
		}
	}
	if reg != nil {
		reg.MustRegister(e.sent, e.states)
	}
	if e.records, err = loadRecords(db); err != nil {
		return nil, fmt.Errorf("load alert states: %w", err)
	}
	if e.sources, e.learned, err = loadSources(db); err != nil {
		return nil, fmt.Errorf("load alert sources: %w", err)
	}
	e.countStates()
	return e, nil
}

func withDefaults(cfg Config) Config {
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func(State) {}
	}
	return cfg
}

// Run evaluates at once and then every interval until ctx is done. An
// evaluation that fails is logged and tried again at the next interval.
func (e *Evaluator) Run(ctx context.Context) error {
	e.logger.Info("alert evaluator started", "rules", len(e.cfg.Alerts.Rules), "interval", e.cfg.Interval)
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		if err := e.Evaluate(ctx); err != nil && ctx.Err() == nil {
			e.logger.Error("alert evaluation failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Snapshot is GET /v1/alerts: the rules and every state that is not ok.
type Snapshot struct {
	Rules  []RuleView `json:"rules"`
	States []State    `json:"states"`
}

// RuleView is a rule as GET /v1/alerts shows it.
type RuleView struct {
	Name        string   `json:"name"`
	Watch       any      `json:"watch"`
	InactiveFor string   `json:"inactive_for"`
	Pending     string   `json:"pending"`
	Repeat      string   `json:"repeat"`
	Notify      []string `json:"notify"`
}

// Snapshot returns the rules and the states, ordered by rule, kind and
// subject.
func (e *Evaluator) Snapshot() Snapshot {
	out := Snapshot{Rules: []RuleView{}, States: []State{}}
	for _, r := range e.cfg.Alerts.Rules {
		var watch any = r.Watches
		if len(r.Watches) == 1 {
			watch = r.Watches[0]
		}
		out.Rules = append(out.Rules, RuleView{Name: r.Name, Watch: watch,
			InactiveFor: FormatDuration(r.InactiveFor), Pending: FormatDuration(r.Pending),
			Repeat: FormatDuration(r.Repeat), Notify: r.Notify})
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, k := range slices.Sorted(maps.Keys(e.records)) {
		out.States = append(out.States, e.records[k].view())
	}
	return out
}

// view is the state with a non-nil error list, as the API shows it.
func (r *record) view() State {
	st := r.State
	st.DeliveryErrors = slices.Clone(st.DeliveryErrors)
	if st.DeliveryErrors == nil {
		st.DeliveryErrors = []DeliveryError{}
	}
	return st
}

// FormatDuration writes d as a configuration would: 16h, 1h30m, 45s.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Evaluate runs every rule once as of the clock's now, then delivers the
// notifications that are due.
func (e *Evaluator) Evaluate(ctx context.Context) error {
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	now := e.cfg.Now()
	act, err := e.readActivity(now)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for i := range e.cfg.Alerts.Rules {
		r := &e.cfg.Alerts.Rules[i]
		silent := e.evaluateSources(r, act, now, seen)
		e.evaluatePeople(r, act, silent, now, seen)
	}
	// Pairs no rule looks at any more (a person left, a rule was removed)
	// go back to ok without a notice.
	e.mu.Lock()
	for k := range e.records {
		if !seen[k] {
			e.dropLocked(k)
		}
	}
	e.mu.Unlock()
	err = e.deliver(ctx, now)
	e.countStates()
	return err
}

// activity is what one evaluation knows of the state.
type activity struct {
	people        map[string]crmpulse.Person
	order         []string
	last          map[string]time.Time       // person id -> latest event
	personSources map[string]map[string]bool // person id -> sources they acted in
	sources       map[string]time.Time       // source -> latest event
	users         map[string]int             // source -> users seen acting in it
}

// readActivity reads the latest activity of every person and source.
func (e *Evaluator) readActivity(now time.Time) (*activity, error) {
	act := &activity{people: map[string]crmpulse.Person{}, last: map[string]time.Time{},
		personSources: map[string]map[string]bool{}, users: map[string]int{}}
	for _, p := range e.dir.People() {
		act.people[p.ID] = p
		act.order = append(act.order, p.ID)
	}
	from := now
	for _, r := range e.cfg.Alerts.Rules {
		from = minTime(from, workingBefore(&e.calendar, now, r.InactiveFor+r.Pending))
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.learned {
		learned, err := e.reader.SourceActivity(e.dir, now)
		if err != nil {
			return nil, fmt.Errorf("learn sources: %w", err)
		}
		for s, t := range learned {
			e.noteSource(s, t)
		}
		e.learned = true
	}
	for _, p := range act.people {
		for s := range p.IDs {
			e.noteSource(s, time.Time{})
		}
	}
	for _, a := range e.reader.LastActivity(e.dir, "", from, now) {
		if a.Status == crmpulse.StatusUnmapped || a.Status == crmpulse.StatusUnattributed {
			e.noteSource(rowSource(a.ID, a.Status), a.Last)
		} else {
			act.last[a.ID] = a.Last
		}
	}
	for s := range e.sources {
		for _, a := range e.reader.LastActivity(e.dir, s, from, now) {
			e.noteSource(s, a.Last)
			p, isPerson := act.people[a.ID]
			if !isPerson || !exempt(&p, now) {
				act.users[s]++
			}
			if isPerson {
				if act.personSources[a.ID] == nil {
					act.personSources[a.ID] = map[string]bool{}
				}
				act.personSources[a.ID][s] = true
			}
		}
	}
	act.sources = maps.Clone(e.sources)
	if err := saveSources(e.db, e.sources, e.learned); err != nil {
		return nil, fmt.Errorf("store sources: %w", err)
	}
	return act, nil
}

// noteSource records that source s exists and had an event at t (zero when
// only its name is known); the caller holds mu.
func (e *Evaluator) noteSource(s string, t time.Time) {
	if s == "" {
		return
	}
	if old, ok := e.sources[s]; !ok || t.After(old) {
		e.sources[s] = t
	}
}

// rowSource returns the source of an unmapped (SOURCE:USER) or
// unattributed (unattributed:SOURCE) report row.
func rowSource(id, status string) string {
	if status == crmpulse.StatusUnattributed {
		return strings.TrimPrefix(id, "unattributed:")
	}
	s, _, _ := strings.Cut(id, ":")
	return s
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// evaluateSources moves each source's state for r and returns the sources
// that are silent under r.
func (e *Evaluator) evaluateSources(r *config.Rule, act *activity, now time.Time, seen map[string]bool) map[string]bool {
	silent := map[string]bool{}
	for _, s := range slices.Sorted(maps.Keys(act.sources)) {
		last := act.sources[s]
		// A source that never sent anything cannot go silent, and the
		// silence of a source with one user is that user's inactivity.
		if last.IsZero() || act.users[s] < minSourceUsers {
			continue
		}
		name := s
		st := State{Rule: r.Name, Kind: KindSourceSilent, Source: &name, LastActivity: &last}
		crossing := workingAfter(&e.calendar, last, r.InactiveFor)
		silent[s] = !now.Before(crossing)
		seen[st.key()] = true
		e.step(r, st, silent[s], crossing, now)
	}
	return silent
}

// evaluatePeople moves each watched person's state for r.
func (e *Evaluator) evaluatePeople(r *config.Rule, act *activity, silent map[string]bool, now time.Time, seen map[string]bool) {
	for _, id := range act.order {
		p := act.people[id]
		if !watched(r, &p) || exempt(&p, now) {
			continue
		}
		st := State{Rule: r.Name, Kind: KindPersonInactive, Person: &PersonRef{ID: p.ID, Name: p.Name}}
		seen[st.key()] = true
		if suppressed(&p, act.personSources[p.ID], silent) {
			e.hold(st.key())
			continue
		}
		since := inactiveSince(&p)
		if t, ok := act.last[p.ID]; ok {
			since = t
			st.LastActivity = &t
		}
		cal, err := e.personCalendar(&p)
		if err != nil {
			e.logger.Warn("person's calendar is not valid; using the default", "user", p.ID, "err", err)
		}
		crossing := workingAfter(&cal, since, r.InactiveFor)
		e.step(r, st, !now.Before(crossing), crossing, now)
	}
}

func watched(r *config.Rule, p *crmpulse.Person) bool {
	for _, w := range r.Watches {
		if w.Matches(p) {
			return true
		}
	}
	return false
}

// exempt reports whether p is never alerted on as of now: they left, or
// their account was deactivated, with effect before now.
func exempt(p *crmpulse.Person, now time.Time) bool {
	if p.Status != crmpulse.StatusLeft && p.Status != crmpulse.StatusDeactivated {
		return false
	}
	return p.StatusSince == nil || !p.StatusSince.After(now)
}

// inactiveSince is when a person who never acted started counting as
// inactive: when they entered the directory or their status took effect,
// whichever is later.
func inactiveSince(p *crmpulse.Person) time.Time {
	since := p.Added
	if p.StatusSince != nil && p.StatusSince.After(since) {
		since = *p.StatusSince
	}
	return since
}

// suppressed reports whether every source p acts in is silent, so that a
// dead source does not make its people look inactive.
func suppressed(p *crmpulse.Person, acted map[string]bool, silent map[string]bool) bool {
	sources := maps.Clone(acted)
	if sources == nil {
		sources = map[string]bool{}
	}
	for s := range p.IDs {
		sources[s] = true
	}
	if len(sources) == 0 {
		return false
	}
	for s := range sources {
		if !silent[s] {
			return false
		}
	}
	return true
}

// personCalendar returns p's calendar in p's zone, falling back to the
// default calendar and the organisation's zone.
func (e *Evaluator) personCalendar(p *crmpulse.Person) (config.WorkingCalendar, error) {
	loc := e.cfg.Location
	if p.Timezone != "" {
		l, err := time.LoadLocation(p.Timezone)
		if err != nil {
			return e.calendar, err
		}
		loc = l
	}
	if p.Calendar == nil && loc == e.cfg.Location {
		return e.calendar, nil
	}
	cal, err := config.ParseCalendar(p.Calendar, &e.cfg.Calendar, loc)
	if err != nil {
		return e.calendar, err
	}
	return cal, nil
}

// step moves one pair's state as of now: cur describes it (rule, kind,
// subject, last activity); inactive says whether the threshold was passed,
// at crossing.
func (e *Evaluator) step(r *config.Rule, cur State, inactive bool, crossing, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := cur.key()
	rec := e.records[key]
	state := StateOK
	if rec != nil {
		state = rec.State.State
		rec.LastActivity = cur.LastActivity
	}
	fireAt := crossing.Add(r.Pending)
	switch {
	case (state == StateOK || state == StateResolved) && inactive:
		next := &record{State: cur}
		if rec != nil {
			next.Outbox = rec.Outbox // a resolve notice still on its way
		}
		rec = next
		if now.Before(fireAt) {
			e.move(key, rec, StatePending, crossing)
			return
		}
		e.move(key, rec, StateFiring, fireAt)
		e.notify(r, rec, now)
	case state == StatePending && !inactive:
		e.dropLocked(key)
	case state == StatePending && !now.Before(fireAt):
		e.move(key, rec, StateFiring, fireAt)
		e.notify(r, rec, now)
	case state == StateFiring && !inactive:
		e.move(key, rec, StateResolved, now)
		e.notify(r, rec, now)
	case state == StateFiring && r.Repeat > 0 && rec.LastNotified != nil && !now.Before(rec.LastNotified.Add(r.Repeat)):
		e.notify(r, rec, now)
		e.save(key, rec)
	case state == StateResolved && len(rec.Outbox) == 0:
		e.dropLocked(key)
	case rec != nil:
		// TODO(alert): this writes every open state on every evaluation to
		// keep last_activity current; write only when it changed.
		e.save(key, rec)
	}
}

// hold keeps a pair as it is while its sources are silent; a pending one
// goes back to ok, so a dead source never turns into person alerts.
func (e *Evaluator) hold(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if rec := e.records[key]; rec != nil && rec.State.State == StatePending {
		e.dropLocked(key)
	}
}

// move sets rec's state and stores it; the caller holds mu.
func (e *Evaluator) move(key string, rec *record, state string, since time.Time) {
	rec.State.State = state
	rec.Since = since
	e.save(key, rec)
	e.cfg.OnChange(rec.view())
}

// notify queues rec's current state for every target of r; the caller
// holds mu and stores rec.
func (e *Evaluator) notify(r *config.Rule, rec *record, now time.Time) {
	at := now
	rec.LastNotified = &at
	notice := rec.view()
	notice.DeliveryErrors = []DeliveryError{}
	for _, t := range r.Notify {
		rec.Outbox = append(rec.Outbox, delivery{Target: t, Notice: notice, NextAt: now})
	}
	e.save(rec.key(), rec)
}

func (e *Evaluator) save(key string, rec *record) {
	e.records[key] = rec
	if err := saveRecord(e.db, key, rec); err != nil {
		e.logger.Error("store alert state", "err", err)
	}
}

// dropLocked forgets a pair, which is then ok; the caller holds mu.
func (e *Evaluator) dropLocked(key string) {
	rec, ok := e.records[key]
	if !ok {
		return
	}
	delete(e.records, key)
	if err := saveRecord(e.db, key, nil); err != nil {
		e.logger.Error("delete alert state", "err", err)
	}
	st := rec.view()
	st.State = StateOK
	e.cfg.OnChange(st)
}

// deliver sends every queued notification that is due, one state at a
// time, and stores what happened.
//
// TODO(alert): delivery is at least once: a crash after a receiver took a
// notification and before the outcome is stored sends it again on restart.
// Deliveries are sequential, so a slow target (10 s timeout) delays the
// others; one tenant's alerts are evaluated with every tenant's events.
func (e *Evaluator) deliver(ctx context.Context, now time.Time) error {
	e.mu.RLock()
	keys := slices.Sorted(maps.Keys(e.records))
	e.mu.RUnlock()
	for _, key := range keys {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		e.mu.RLock()
		rec := e.records[key]
		var due []delivery
		if rec != nil {
			due = slices.Clone(rec.Outbox)
		}
		e.mu.RUnlock()
		if len(due) == 0 {
			continue
		}
		results := e.send(ctx, due, now)
		e.mu.Lock()
		if cur := e.records[key]; cur == rec {
			e.settle(key, rec, due, results, now)
		}
		e.mu.Unlock()
	}
	return nil
}

// send tries each due delivery once; a nil result means it was not due.
func (e *Evaluator) send(ctx context.Context, due []delivery, now time.Time) []error {
	results := make([]error, len(due))
	for i, d := range due {
		if now.Before(d.NextAt) {
			results[i] = errNotDue
			continue
		}
		target := e.targets[d.Target]
		if target == nil {
			results[i] = fmt.Errorf("no target named %q", d.Target)
			continue
		}
		results[i] = target.Send(ctx, d.Notice)
	}
	return results
}

var errNotDue = errors.New("not due")

// settle records the outcome of a round of deliveries; the caller holds mu.
func (e *Evaluator) settle(key string, rec *record, tried []delivery, results []error, now time.Time) {
	var keep []delivery
	for i, d := range tried {
		err := results[i]
		switch {
		case errors.Is(err, errNotDue):
			keep = append(keep, d)
			continue
		case err == nil:
			e.sent.WithLabelValues(d.Target, "sent").Inc()
			rec.DeliveryErrors = slices.DeleteFunc(rec.DeliveryErrors, func(x DeliveryError) bool { return x.Target == d.Target })
			continue
		}
		d.Attempts++
		e.sent.WithLabelValues(d.Target, "failed").Inc()
		e.logger.Warn("alert delivery failed", "target", d.Target, "rule", rec.Rule,
			"attempts", d.Attempts, "err", err)
		rec.DeliveryErrors = slices.DeleteFunc(rec.DeliveryErrors, func(x DeliveryError) bool { return x.Target == d.Target })
		rec.DeliveryErrors = append(rec.DeliveryErrors, DeliveryError{Target: d.Target, Error: err.Error(), At: now, Attempts: d.Attempts})
		if d.Attempts >= maxAttempts {
			e.sent.WithLabelValues(d.Target, "dropped").Inc()
			continue
		}
		d.NextAt = now.Add(backoff(d.Attempts))
		keep = append(keep, d)
	}
	// Notifications queued while this round was sending stay queued.
	rec.Outbox = append(keep, rec.Outbox[len(tried):]...)
	e.save(key, rec)
}

// backoff is the wait after the n-th failed attempt.
func backoff(n int) time.Duration {
	d := firstRetry
	for i := 1; i < n && d < maxRetryWait; i++ {
		d *= 2
	}
	return min(d, maxRetryWait)
}

// countStates sets the states gauge.
func (e *Evaluator) countStates() {
	counts := map[string]int{StatePending: 0, StateFiring: 0, StateResolved: 0}
	e.mu.RLock()
	for _, rec := range e.records {
		counts[rec.State.State]++
	}
	e.mu.RUnlock()
	for s, n := range counts {
		e.states.WithLabelValues(s).Set(float64(n))
	}
}
