package topics

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crmpulse/crmpulse/ingest"
	"github.com/crmpulse/crmpulse/ingest/debezium"
	"github.com/crmpulse/crmpulse/ingest/salesforce"
)

// Default consumer groups of the two configuration blocks.
const (
	DefaultDebeziumGroup   = "crmpulse-debezium"
	DefaultSalesforceGroup = "crmpulse-salesforce"
)

// DebeziumConfig is the configuration block "debezium": where Debezium's
// topics are and how each table's rows become events. Tables is a list, not a
// map keyed by topic, because topic names hold dots and the configuration
// loader splits keys on dots.
type DebeziumConfig struct {
	// Brokers are the seed brokers, host:port[,host:port...]; empty turns
	// the reader off.
	Brokers string `koanf:"brokers"`
	// Group is the consumer group whose committed offsets say how far the
	// topics were read.
	Group  string          `koanf:"group"`
	Tables []DebeziumTable `koanf:"tables"`
}

// DebeziumTable maps the records of one topic (one table).
type DebeziumTable struct {
	// Topic is the table's topic, <topic.prefix>.<schema>.<table>.
	Topic          string `koanf:"topic"`
	debezium.Table `koanf:",squash"`
}

// SalesforceConfig is the configuration block "salesforce_kafka": topics
// that a Salesforce source connector writes Change Data Capture events to,
// each record's value one event in the Streaming API JSON shape.
type SalesforceConfig struct {
	// Brokers are the seed brokers; empty turns the reader off.
	Brokers string   `koanf:"brokers"`
	Group   string   `koanf:"group"`
	Topics  []string `koanf:"topics"`
	// OrgID is the tenant of the events (change events do not carry it);
	// empty means the top-level salesforce_org_id.
	OrgID string `koanf:"org_id"`
}

// Validate names the first wrong key of the block.
func (c *DebeziumConfig) Validate() error {
	if c.Brokers == "" {
		return nil
	}
	if len(c.Tables) == 0 {
		return errors.New("config debezium.tables: brokers are set but no table is mapped")
	}
	seen := map[string]bool{}
	for i, t := range c.Tables {
		switch {
		case t.Topic == "":
			return fmt.Errorf("config debezium.tables[%d].topic: missing", i)
		case seen[t.Topic]:
			return fmt.Errorf("config debezium.tables[%d].topic: %q is mapped twice", i, t.Topic)
		case ingest.EntityName(t.Entity) != t.Entity || t.Entity == "":
			return fmt.Errorf("config debezium.tables[%d].entity: %q must be lowercase letters, digits and _", i, t.Entity)
		}
		switch t.TimeUnit {
		case "", "us", "ms", "iso":
		default:
			return fmt.Errorf("config debezium.tables[%d].time_unit: %q must be us, ms or iso", i, t.TimeUnit)
		}
		seen[t.Topic] = true
	}
	return nil
}

// Validate names the first wrong key of the block.
func (c *SalesforceConfig) Validate() error {
	if c.Brokers != "" && len(c.Topics) == 0 {
		return errors.New("config salesforce_kafka.topics: brokers are set but no topic is named")
	}
	return nil
}

// Reader returns the reader configuration of the block; ok is false when
// no brokers are set.
func (c *DebeziumConfig) Reader() (cfg Config, ok bool) {
	if c.Brokers == "" {
		return Config{}, false
	}
	tables := map[string]debezium.Table{}
	var names []string
	for _, t := range c.Tables {
		tables[t.Topic] = t.Table
		names = append(names, t.Topic)
	}
	return Config{
		Name: debezium.Source, Brokers: splitBrokers(c.Brokers), Group: or(c.Group, DefaultDebeziumGroup),
		Topics: names, Decode: Debezium(debezium.New(debezium.Config{Tables: tables})),
	}, true
}

// Reader returns the reader configuration of the block, with orgID as the
// tenant unless the block sets its own; ok is false when no brokers are set.
func (c *SalesforceConfig) Reader(orgID string) (cfg Config, ok bool) {
	if c.Brokers == "" {
		return Config{}, false
	}
	return Config{
		Name: salesforce.Source, Brokers: splitBrokers(c.Brokers), Group: or(c.Group, DefaultSalesforceGroup),
		Topics: c.Topics, Decode: Salesforce(or(c.OrgID, orgID)),
	}, true
}

// Debezium decodes each record with d: at most one event, none for a
// tombstone or an op that is not a user's change (r, t, m).
func Debezium(d *debezium.Decoder) Decoder {
	return func(r *kgo.Record, now time.Time) (*ingest.Delivery, error) {
		e, err := d.Decode(r.Topic, r.Key, r.Value, now)
		if err != nil {
			return nil, err
		}
		out := &ingest.Delivery{}
		if e == nil {
			out.Ignore("debezium: tombstone or op r, t, m")
		} else {
			out.Events = append(out.Events, *e)
		}
		return out, nil
	}
}

// Salesforce decodes each record's value as one Change Data Capture event
// of the organisation orgID; a null value (a tombstone) gives nothing.
func Salesforce(orgID string) Decoder {
	return func(r *kgo.Record, now time.Time) (*ingest.Delivery, error) {
		if len(r.Value) == 0 || string(r.Value) == "null" {
			d := &ingest.Delivery{}
			d.Ignore("tombstone")
			return d, nil
		}
		return salesforce.DecodeChangeEvent(r.Value, orgID, now)
	}
}

func splitBrokers(s string) []string {
	var out []string
	for b := range strings.SplitSeq(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

func or(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
