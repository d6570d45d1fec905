package topics

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/aggregate"
	"github.com/crmpulse/crmpulse/ingest/debezium"
	"github.com/crmpulse/crmpulse/ingest/ingesttest"
	"github.com/crmpulse/crmpulse/stream/jetstream"
)

const (
	leadsTopic      = "crm.public.leads"
	salesforceTopic = "salesforce.cdc"
	orgID           = "00D7R0000000OrgUAE"
)

// leads is the mapping SOURCES-EXPECTED §1.3 assumes for the fixtures.
var leads = debezium.Table{
	Entity: "lead", Name: "full_name",
	CreatedBy: "created_by", UpdatedBy: "updated_by",
	CreatedAt: "created_at", UpdatedAt: "updated_at", TimeUnit: "us",
}

func debeziumConfig(brokers []string) Config {
	return Config{
		Name: debezium.Source, Brokers: brokers, Group: "test-debezium", Topics: []string{leadsTopic},
		Decode: Debezium(debezium.New(debezium.Config{Tables: map[string]debezium.Table{leadsTopic: leads}})),
	}
}

func TestDebeziumTopic(t *testing.T) {
	brokers := startKafka(t, leadsTopic)
	produce(t, brokers, leadsTopic, fixtures(t, "testdata/debezium.json"))
	log := newLog(t)
	reg := prometheus.NewRegistry()
	run(t, debeziumConfig(brokers), log, reg, func() bool { return log.appended() == 3 && len(log.deadLetters()) == 2 })

	ingesttest.Golden(t, "testdata/debezium.golden.json", readAll(t, log))
	for _, source := range log.deadLetterSources() {
		if source != debezium.Source {
			t.Errorf("dead letter source %q, want %q", source, debezium.Source)
		}
	}
	for outcome, want := range map[string]float64{"appended": 3, "skipped": 3, "dead_letter": 2} {
		got := counter(t, reg, "crmpulse_topic_records_total",
			map[string]string{"reader": "debezium", "topic": leadsTopic, "outcome": outcome})
		if got != want {
			t.Errorf("records %s: got %v, want %v", outcome, got, want)
		}
	}
}

func TestSalesforceTopic(t *testing.T) {
	brokers := startKafka(t, salesforceTopic)
	produce(t, brokers, salesforceTopic, fixtures(t, "testdata/salesforce.json"))
	log := newLog(t)
	cfg := SalesforceConfig{Brokers: brokers[0], Topics: []string{salesforceTopic}}
	rc, ok := cfg.Reader(orgID)
	if !ok {
		t.Fatal("the block with brokers made no reader")
	}
	reg := prometheus.NewRegistry()

	run(t, rc, log, reg, func() bool { return log.appended() == 4 && len(log.deadLetters()) == 2 })

	ingesttest.Golden(t, "testdata/salesforce.golden.json", readAll(t, log))
	gaps := counter(t, reg, "crmpulse_topic_gaps_total", map[string]string{"topic": salesforceTopic, "type": "contact"})
	if gaps != 1 {
		t.Errorf("GAP_OVERFLOW gaps: got %v, want 1", gaps)
	}
}

// A reader stopped after the log stored a batch but before the offsets were
// committed reads the batch again; the state counts each change once, and
// two real updates of one record twice.
func TestRedeliveryCountsOnce(t *testing.T) {
	brokers := startKafka(t, leadsTopic)
	records := fixtures(t, "testdata/debezium.json")[:2] // create, update
	second := `{"before": null, "after": {"id": 42, "full_name": "Zoë Ångström", "updated_by": "u-1001",` +
		` "updated_at": 1767225655000000}, "source": {"name": "crm", "ts_ms": 1767225655001, "schema": "public",` +
		` "table": "leads"}, "op": "u"}`
	records = append(records, &kgo.Record{Key: []byte(`{"id":42}`), Value: []byte(second)})
	produce(t, brokers, leadsTopic, records)
	log := newLog(t)
	cfg := debeziumConfig(brokers)

	// The first reader's append is stored, then the reader stops, as if the
	// process had crashed before it committed the offsets.
	ctx, crash := context.WithCancel(t.Context())
	log.afterAppend = func() error { crash(); return context.Canceled }
	runUntil(ctx, t, cfg, log, prometheus.NewRegistry())
	if log.appended() == 0 {
		t.Fatal("the first reader appended nothing")
	}
	log.afterAppend = nil
	before := log.appended()
	run(t, cfg, log, prometheus.NewRegistry(), func() bool { return log.appended() == before+3 })

	stored := readAll(t, log)
	if len(stored) != before+3 {
		t.Fatalf("the log holds %d events, want %d (the batch twice)", len(stored), before+3)
	}
	store := openStore(t)
	var batch []crmpulse.Record
	for i, e := range stored {
		batch = append(batch, crmpulse.Record{Partition: 0, Offset: int64(i + 1), Event: e})
	}
	fresh, err := store.Apply(t.Context(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(fresh), 3; got != want || store.Events() != want {
		t.Errorf("the state applied %d events (holds %d), want %d: one create and two updates",
			got, store.Events(), want)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  DebeziumConfig
		ok   bool
	}{
		{"off", DebeziumConfig{}, true},
		{"one table", DebeziumConfig{Brokers: "k:9092", Tables: []DebeziumTable{{Topic: leadsTopic, Table: leads}}}, true},
		{"no tables", DebeziumConfig{Brokers: "k:9092"}, false},
		{"no topic", DebeziumConfig{Brokers: "k:9092", Tables: []DebeziumTable{{Table: leads}}}, false},
		{"bad entity", DebeziumConfig{Brokers: "k:9092", Tables: []DebeziumTable{
			{Topic: leadsTopic, Table: debezium.Table{Entity: "Lead"}}}}, false},
		{"bad unit", DebeziumConfig{Brokers: "k:9092", Tables: []DebeziumTable{
			{Topic: leadsTopic, Table: debezium.Table{Entity: "lead", TimeUnit: "s"}}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// startKafka starts an in-process Kafka on 127.0.0.1 with the topics, one
// partition each, and returns its address.
func startKafka(t *testing.T, topics ...string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics...))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// fixtures reads a testdata file of records: {"key", "value"}, or "raw" for
// a value that is not JSON. A null or absent key or value is a nil one.
func fixtures(t *testing.T, path string) []*kgo.Record {
	t.Helper()
	var items []struct {
		Key, Value json.RawMessage
		Raw        *string
	}
	if err := json.Unmarshal(ingesttest.Payload(t, path), &items); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	bytesOf := func(raw json.RawMessage) []byte {
		if len(raw) == 0 || string(raw) == "null" {
			return nil
		}
		return raw
	}
	var records []*kgo.Record
	for _, it := range items {
		r := &kgo.Record{Key: bytesOf(it.Key), Value: bytesOf(it.Value)}
		if it.Raw != nil {
			r.Value = []byte(*it.Raw)
		}
		records = append(records, r)
	}
	return records
}

func produce(t *testing.T, brokers []string, topic string, records []*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(t.Context(), records...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// run runs a reader until done reports true, then stops it.
func run(t *testing.T, cfg Config, log crmpulse.Log, reg prometheus.Registerer, done func() bool) {
	t.Helper()
	ctx, stop := context.WithCancel(t.Context())
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		runUntil(ctx, t, cfg, log, reg)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			stop()
			<-finished
			t.Fatal("the reader did not store the records within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	<-finished
}

// runUntil runs a reader with the test clock until ctx is done.
func runUntil(ctx context.Context, t *testing.T, cfg Config, log crmpulse.Log, reg prometheus.Registerer) {
	rd, err := New(cfg, log, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Error(err)
		return
	}
	rd.now = func() time.Time { return ingesttest.Now }
	if err := rd.Run(ctx); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// testLog is the embedded JetStream log, counting what it stores and
// remembering the dead letters; afterAppend, when set, is called after each
// stored append and its error returned instead.
type testLog struct {
	*jetstream.Log
	afterAppend func() error

	mu      sync.Mutex
	events  int
	dead    []string
	sources []string
}

func newLog(t *testing.T) *testLog {
	t.Helper()
	ns, nc, err := jetstream.StartServer(jetstream.ServerConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	t.Cleanup(nc.Close)
	l, err := jetstream.Open(t.Context(), nc, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{Log: l}
}

func (l *testLog) Append(ctx context.Context, events []crmpulse.Event) error {
	if err := l.Log.Append(ctx, events); err != nil {
		return err
	}
	l.mu.Lock()
	l.events += len(events)
	after := l.afterAppend
	l.mu.Unlock()
	if after != nil {
		return after()
	}
	return nil
}

func (l *testLog) DeadLetter(ctx context.Context, source, reason string, data []byte) error {
	if err := l.Log.DeadLetter(ctx, source, reason, data); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dead = append(l.dead, reason)
	l.sources = append(l.sources, source)
	return nil
}

func (l *testLog) appended() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.events
}

func (l *testLog) deadLetters() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.dead...)
}

func (l *testLog) deadLetterSources() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.sources...)
}

// readAll returns every event the log holds, in order. The log writes each
// event's identity as its id; an id that is the derived identity is given
// back as "", as the decoders made it and the golden files write it.
func readAll(t *testing.T, log *testLog) []crmpulse.Event {
	t.Helper()
	end, err := log.End(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var events []crmpulse.Event
	if end[0] < 1 {
		return nil
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	log.Consume(ctx, func(int32) int64 { return 0 }, func(_ context.Context, batch []crmpulse.Record) error {
		for _, r := range batch {
			e := r.Event
			if derived := e; derived.ID != "" {
				derived.ID = ""
				if derived.Identity() == e.ID {
					e.ID = ""
				}
			}
			events = append(events, e)
			if r.Offset >= end[0] {
				cancel()
			}
		}
		return nil
	})
	return events
}

func openStore(t *testing.T) *aggregate.Store {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := aggregate.Open(db, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// counter returns the value of the named counter whose labels include
// these, failing the test when the registry has none.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s%v", name, labels)
	return 0
}
