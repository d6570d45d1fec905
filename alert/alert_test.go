package alert_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/aggregate"
	"github.com/crmpulse/crmpulse/alert"
	"github.com/crmpulse/crmpulse/config"
	"github.com/crmpulse/crmpulse/directory"
)

// Monday 2 March 2026, 08:00 UTC: the tests' week starts here.
var monday = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

var weekdays = crmpulse.Calendar{
	WorkingDays: []string{"mon", "tue", "wed", "thu", "fri"}, WorkingHours: "09:00-17:00", Holidays: []string{},
}

// clock is the evaluator's controllable now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// receiver is a webhook target on 127.0.0.1 that keeps what it receives.
type receiver struct {
	srv *httptest.Server

	mu     sync.Mutex
	bodies [][]byte
	fail   bool
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.fail {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		if req.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want JSON", http.StatusUnsupportedMediaType)
			return
		}
		r.bodies = append(r.bodies, body)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setFailing(fail bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = fail
}

// states decodes everything received as webhook state objects.
func (r *receiver) states(t *testing.T) []alert.State {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []alert.State
	for _, b := range r.bodies {
		var st alert.State
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("webhook body is not a state: %v\n%s", err, b)
		}
		out = append(out, st)
	}
	return out
}

// fixture is a real Badger state, directory and evaluator on a temp dir.
type fixture struct {
	t      *testing.T
	path   string
	clock  *clock
	hook   *receiver
	alerts config.Alerts
	reg    *prometheus.Registry

	db     *badger.DB
	store  *aggregate.Store
	people *directory.Directory
	eval   *alert.Evaluator
	offset int64
}

// rule returns a rule watching everyone and notifying the fixture's hook.
func rule(inactive, pending, repeat time.Duration) config.Rule {
	return config.Rule{Name: "quiet", Watches: []config.Watch{{Everyone: true}},
		InactiveFor: inactive, Pending: pending, Repeat: repeat, Notify: []string{"hook"}}
}

func newFixture(t *testing.T, rules ...config.Rule) *fixture {
	t.Helper()
	f := &fixture{t: t, path: t.TempDir(), clock: &clock{t: monday}, hook: newReceiver(t)}
	f.alerts = config.Alerts{
		Targets: []config.Target{{Name: "hook", Webhook: &config.URLTarget{URL: f.hook.srv.URL}}},
		Rules:   rules,
	}
	f.open()
	t.Cleanup(f.close)
	return f
}

// open opens Badger and everything on it, as a process start does.
func (f *fixture) open() {
	t := f.t
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(f.path).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	f.db = db
	logger := slog.New(slog.DiscardHandler)
	if f.store, err = aggregate.Open(db, logger); err != nil {
		t.Fatal(err)
	}
	if f.people, err = directory.Open(db, logger); err != nil {
		t.Fatal(err)
	}
	f.reg = prometheus.NewRegistry()
	f.eval, err = alert.New(alert.Config{Alerts: f.alerts, Calendar: weekdays, Location: time.UTC, Now: f.clock.Now},
		db, f.store, f.people, f.reg, logger)
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) close() {
	if f.db != nil {
		f.db.Close()
		f.db = nil
	}
}

// restart closes Badger and opens it again.
func (f *fixture) restart() {
	f.t.Helper()
	f.close()
	f.open()
}

func (f *fixture) person(p crmpulse.Person, added time.Time) {
	f.t.Helper()
	if err := f.people.Put(p, added); err != nil {
		f.t.Fatal(err)
	}
}

// act applies one event of user in source at at.
func (f *fixture) act(source, user string, at time.Time) {
	f.t.Helper()
	f.offset++
	e := crmpulse.Event{Tenant: "default", Source: source, User: user, Entity: "lead",
		Record: "L-" + user + "-" + at.Format(time.RFC3339Nano), Action: crmpulse.Updated, At: at, Received: at}
	if _, err := f.store.Apply(context.Background(), []crmpulse.Record{{Partition: 0, Offset: f.offset, Event: e}}); err != nil {
		f.t.Fatal(err)
	}
}

// at sets the clock and evaluates.
func (f *fixture) at(t time.Time) {
	f.t.Helper()
	f.clock.Set(t)
	if err := f.eval.Evaluate(context.Background()); err != nil {
		f.t.Fatalf("evaluate at %s: %v", t, err)
	}
}

// notices lists what the hook received as "kind subject state".
func (f *fixture) notices() []string {
	f.t.Helper()
	var out []string
	for _, st := range f.hook.states(f.t) {
		subject := ""
		if st.Person != nil {
			subject = st.Person.ID
		} else if st.Source != nil {
			subject = *st.Source
		}
		out = append(out, st.Kind+" "+subject+" "+st.State)
	}
	return out
}

func (f *fixture) wantNotices(want ...string) {
	f.t.Helper()
	got := f.notices()
	if len(got) != len(want) {
		f.t.Fatalf("notices = %q, want %q", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			f.t.Fatalf("notices = %q, want %q", got, want)
		}
	}
}

// stateOf returns the state of a person under the rule "quiet", or ok.
func (f *fixture) stateOf(id string) string {
	f.t.Helper()
	for _, st := range f.eval.Snapshot().States {
		if st.Person != nil && st.Person.ID == id {
			return st.State
		}
	}
	return alert.StateOK
}

func hours(h float64) time.Duration { return time.Duration(h * float64(time.Hour)) }

func TestQuietPersonFiresOnce(t *testing.T) {
	f := newFixture(t, rule(8*time.Hour, time.Hour, 0))
	f.person(crmpulse.Person{ID: "ana", Name: "Ana Ruiz"}, monday)
	f.act("api", "ana", monday.Add(2*time.Hour)) // Monday 10:00

	// Eight working hours after Monday 10:00 is Tuesday 10:00; firing
	// waits an hour more.
	f.at(monday.Add(hours(25.5))) // Tuesday 09:30
	if got := f.stateOf("ana"); got != alert.StateOK {
		t.Errorf("Tuesday 09:30: state %s, want ok", got)
	}
	f.at(monday.Add(hours(26.5))) // Tuesday 10:30
	if got := f.stateOf("ana"); got != alert.StatePending {
		t.Errorf("Tuesday 10:30: state %s, want pending", got)
	}
	f.wantNotices()
	f.at(monday.Add(27 * time.Hour)) // Tuesday 11:00
	f.wantNotices("person_inactive ana firing")
	for _, h := range []float64{27.5, 30, 50, 100} {
		f.at(monday.Add(hours(h)))
	}
	f.wantNotices("person_inactive ana firing")

	st := f.hook.states(t)[0]
	if st.Rule != "quiet" || st.Person.Name != "Ana Ruiz" || st.Source != nil ||
		!st.Since.Equal(monday.Add(27*time.Hour)) || !st.LastActivity.Equal(monday.Add(2*time.Hour)) {
		t.Errorf("notice = %+v", st)
	}
}

func TestWeekendDoesNotFire(t *testing.T) {
	f := newFixture(t, rule(8*time.Hour, 0, 0))
	f.person(crmpulse.Person{ID: "ana", Name: "Ana Ruiz"}, monday)
	friday := monday.AddDate(0, 0, 4)
	f.act("api", "ana", friday.Add(8*time.Hour)) // Friday 16:00

	// One working hour on Friday, none on Saturday and Sunday, seven on
	// Monday: the threshold falls on Monday 16:00.
	for _, h := range []float64{10, 24, 40, 60, 72 + 7.99} {
		f.at(friday.Add(hours(h)))
		if got := f.stateOf("ana"); got != alert.StateOK {
			t.Fatalf("Friday + %vh: state %s, want ok", h, got)
		}
	}
	f.wantNotices()
	f.at(friday.Add(72 * time.Hour).Add(8 * time.Hour)) // Monday 16:00
	f.wantNotices("person_inactive ana firing")
}

func TestOwnCalendarAndHolidays(t *testing.T) {
	f := newFixture(t, rule(8*time.Hour, 0, 0))
	// Ana works from Madrid and takes the Tuesday off; Ben has the default
	// calendar in UTC.
	f.person(crmpulse.Person{ID: "ana", Name: "Ana Ruiz", Timezone: "Europe/Madrid",
		Calendar: &crmpulse.Calendar{Holidays: []string{"2026-03-03"}}}, monday)
	f.person(crmpulse.Person{ID: "ben", Name: "Ben Ode"}, monday)
	f.act("hubspot", "ana", monday.Add(9*time.Hour)) // Monday 17:00 UTC, 18:00 in Madrid
	f.act("api", "ben", monday.Add(9*time.Hour))

	// Ben's eight hours end on Tuesday 17:00 UTC; Ana's on Wednesday
	// 17:00 in Madrid, 16:00 UTC.
	f.at(monday.Add(33 * time.Hour)) // Tuesday 17:00 UTC
	f.wantNotices("person_inactive ben firing")
	f.at(monday.Add(hours(55.99))) // Wednesday 15:59 UTC
	f.wantNotices("person_inactive ben firing")
	f.at(monday.Add(56 * time.Hour)) // Wednesday 16:00 UTC
	f.wantNotices("person_inactive ben firing", "person_inactive ana firing")
}

func TestRepeatAfterTheInterval(t *testing.T) {
	f := newFixture(t, rule(8*time.Hour, 0, 24*time.Hour))
	f.person(crmpulse.Person{ID: "ana", Name: "Ana Ruiz"}, monday)
	f.act("api", "ana", monday.Add(time.Hour)) // Monday 09:00: fires Monday 17:00
	fired := monday.Add(9 * time.Hour)

	f.at(fired)
	f.wantNotices("person_inactive ana firing")
	f.at(fired.Add(hours(23.99)))
	f.wantNotices("person_inactive ana firing")
	f.at(fired.Add(24 * time.Hour))
	f.wantNotices("person_inactive ana firing", "person_inactive ana firing")
	f.at(fired.Add(30 * time.Hour))
	f.wantNotices("person_inactive ana firing", "person_inactive ana firing")
	f.at(fired.Add(48 * time.Hour))
	f.wantNotices("person_inactive ana firing", "person_inactive ana firing", "person_inactive ana firing")
}

func TestActivityResolves(t *testing.T) {
	f := newFixture(t, rule(8*time.Hour, 0, 0))
	f.person(crmpulse.Person{ID: "ana", Name: "Ana Ruiz", IDs: map[string]string{"hubspot": "2000001"}}, monday)
	f.act("hubspot", "2000001", monday.Add(time.Hour))
	f.at(monday.Add(10 * time.Hour))
	f.wantNotices("person_inactive ana firing")

	// An event under her HubSpot id counts for her.
	f.act("hubspot", "2000001", monday.Add(24*time.Hour+2*time.Hour))
	f.at(monday.Add(24*time.Hour + 3*time.Hour))
	f.wantNotices("person_inactive ana firing", "person_inactive ana resolved")
	if got := f.stateOf("ana"); got != alert.StateResolved {
		t.Errorf("after the notice: state %s, want resolved", got)
	}
	f.at(monday.Add(24*time.Hour + 4*time.Hour))
	if got := f.stateOf("ana"); got != alert.StateOK {
		t.Errorf("an evaluation later: state %s, want ok", got)
	}
	st := f.hook.states(t)[1]
	if !st.LastActivity.Equal(monday.Add(26 * time.Hour)) {
		t.Errorf("resolve notice's last_activity = %v, want Tuesday 10:00", st.LastActivity)
	}
	// Quiet again: a new firing.
	f.at(monday.Add(48*time.Hour + 2*time.Hour))
	f.wantNotices("person_inactive ana firing", "person_inactive ana resolved", "person_inactive ana firing")
}

func TestRestartChangesNothing(t *testing.T) {
	f := newFixture(t, rule(8*time.Hour, 0, 24*time.Hour))
	f.person(crmpulse.Person{ID: "ana", Name: "Ana Ruiz"}, monday)
	f.act("api", "ana", monday.Add(time.Hour))
	fired := monday.Add(9 * time.Hour)
	f.at(fired)
	f.wantNotices("person_inactive ana firing")

	// A restart neither re-sends the firing nor forgets it: the repeat
	// still comes 24 hours after the first notice.
	f.restart()
	f.at(fired.Add(time.Minute))
	f.wantNotices("person_inactive ana firing")
	if got := f.stateOf("ana"); got != alert.StateFiring {
		t.Fatalf("after the restart: state %s, want firing", got)
	}
	f.restart()
	f.at(fired.Add(24 * time.Hour))
	f.wantNotices("person_inactive ana firing", "person_inactive ana firing")

	// Activity before a restart resolves after it.
	f.act("api", "ana", fired.Add(25*time.Hour))
	f.restart()
	f.at(fired.Add(26 * time.Hour))
	f.wantNotices("person_inactive ana firing", "person_inactive ana firing", "person_inactive ana resolved")
}

func TestRestartKeepsUndeliveredNotices(t *testing.T) {
	f := newFixture(t, rule(8*time.Hour, 0, 0))
	f.person(crmpulse.Person{ID: "ana", Name: "Ana Ruiz"}, monday)
	f.act("api", "ana", monday.Add(time.Hour))
	fired := monday.Add(9 * time.Hour)

	f.hook.setFailing(true)
	f.at(fired)
	f.wantNotices()
	st := f.eval.Snapshot().States
	if len(st) != 1 || len(st[0].DeliveryErrors) != 1 || st[0].DeliveryErrors[0].Target != "hook" {
		t.Fatalf("states = %+v, want one with a delivery error for hook", st)
	}
	if got := testutil.ToFloat64(mustCounter(t, f.reg, "hook", "failed")); got != 1 {
		t.Errorf("failed deliveries = %v, want 1", got)
	}

	// The receiver is back, but the retry waits for its backoff.
	f.hook.setFailing(false)
	f.restart()
	f.at(fired.Add(10 * time.Second))
	f.wantNotices()
	f.at(fired.Add(30 * time.Second))
	f.wantNotices("person_inactive ana firing")
	if st := f.eval.Snapshot().States; len(st[0].DeliveryErrors) != 0 {
		t.Errorf("delivery errors after a success = %+v, want none", st[0].DeliveryErrors)
	}
	if got := testutil.ToFloat64(mustCounter(t, f.reg, "hook", "sent")); got != 1 {
		t.Errorf("sent deliveries = %v, want 1", got)
	}
}

// mustCounter returns crmpulse_alert_notifications_total{target,result}.
func mustCounter(t *testing.T, reg *prometheus.Registry, target, result string) prometheus.Collector {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != "crmpulse_alert_notifications_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["target"] == target && labels["result"] == result {
				c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
				c.Add(m.GetCounter().GetValue())
				return c
			}
		}
	}
	return prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
}

func TestSilentSourceRaisesOneAlert(t *testing.T) {
	f := newFixture(t, rule(8*time.Hour, 0, 0))
	f.person(crmpulse.Person{ID: "ana", Name: "Ana Ruiz", IDs: map[string]string{"hubspot": "1"}}, monday)
	f.person(crmpulse.Person{ID: "ben", Name: "Ben Ode", IDs: map[string]string{"hubspot": "2"}}, monday)
	f.person(crmpulse.Person{ID: "cy", Name: "Cy Pérez", IDs: map[string]string{"hubspot": "3", "pipedrive": "9"}}, monday)
	f.act("hubspot", "1", monday.Add(time.Hour))
	f.act("hubspot", "2", monday.Add(time.Hour))
	f.act("hubspot", "3", monday.Add(time.Hour))
	// Pipedrive keeps sending, from Cy and from a user nobody mapped.
	for h := 1; h < 60; h++ {
		f.act("pipedrive", "4711", monday.Add(time.Duration(h)*time.Hour))
	}
	f.act("pipedrive", "9", monday.Add(4*time.Hour))

	f.at(monday.Add(9*time.Hour - time.Minute))
	f.wantNotices()
	// HubSpot went silent Monday 09:00; Ana and Ben act only there, so
	// only the source alert fires. Cy also acts in Pipedrive, which is
	// alive, so Cy is watched as a person: quiet since Monday 12:00.
	f.at(monday.Add(9 * time.Hour))
	f.wantNotices("source_silent hubspot firing")
	f.at(monday.Add(50 * time.Hour))
	f.wantNotices("source_silent hubspot firing", "person_inactive cy firing")
	for _, id := range []string{"ana", "ben"} {
		if got := f.stateOf(id); got != alert.StateOK {
			t.Errorf("%s: state %s, want ok while their only source is silent", id, got)
		}
	}
	snap := f.eval.Snapshot()
	var source *alert.State
	for i := range snap.States {
		if snap.States[i].Kind == alert.KindSourceSilent {
			source = &snap.States[i]
		}
	}
	if source == nil || source.Person != nil || *source.Source != "hubspot" || !source.LastActivity.Equal(monday.Add(time.Hour)) {
		t.Fatalf("source state = %+v", source)
	}

	// HubSpot comes back through Ana: the source alert resolves, and Ben,
	// still quiet there, is now alerted on as a person.
	f.act("hubspot", "1", monday.Add(51*time.Hour))
	f.at(monday.Add(52 * time.Hour))
	f.wantNotices("source_silent hubspot firing", "person_inactive cy firing",
		"person_inactive ben firing", "source_silent hubspot resolved")
}

func TestPeopleWhoLeftAreNeverAlerted(t *testing.T) {
	f := newFixture(t, rule(8*time.Hour, 0, time.Hour))
	left := monday.AddDate(0, 0, -30)
	f.person(crmpulse.Person{ID: "gone", Name: "Gone Early", Status: crmpulse.StatusLeft, StatusSince: &left}, monday)
	f.person(crmpulse.Person{ID: "ana", Name: "Ana Ruiz"}, monday)
	f.act("api", "gone", left.Add(-time.Hour))
	f.act("api", "ana", monday.Add(time.Hour))
	f.at(monday.Add(10 * time.Hour))
	f.wantNotices("person_inactive ana firing")

	// Ana leaves while firing: her alert ends without a notice, and no
	// repeat follows.
	now := monday.Add(11 * time.Hour)
	f.person(crmpulse.Person{ID: "ana", Name: "Ana Ruiz", Status: crmpulse.StatusLeft, StatusSince: &now}, monday)
	for h := 11; h < 60; h += 5 {
		f.at(monday.Add(time.Duration(h) * time.Hour))
	}
	f.wantNotices("person_inactive ana firing")
	if n := len(f.eval.Snapshot().States); n != 0 {
		t.Errorf("states = %d, want none", n)
	}
}

func TestNeverActiveCountsFromEntryOrStatus(t *testing.T) {
	f := newFixture(t, rule(8*time.Hour, 0, 0))
	since := monday.Add(24 * time.Hour) // Tuesday 08:00, later than Added
	f.person(crmpulse.Person{ID: "new", Name: "New Hire"}, monday)
	f.person(crmpulse.Person{ID: "back", Name: "Back Again", StatusSince: &since}, monday)
	f.at(monday.Add(9 * time.Hour)) // Monday 17:00: eight hours since Added
	f.wantNotices("person_inactive new firing")
	f.at(monday.Add(33 * time.Hour)) // Tuesday 17:00
	f.wantNotices("person_inactive new firing", "person_inactive back firing")
	if st := f.hook.states(t)[0]; st.LastActivity != nil {
		t.Errorf("last_activity of someone who never acted = %v, want null", st.LastActivity)
	}
}
