// Package config loads crmpulse's configuration from a YAML file, the
// environment and command-line flags, in that order of precedence (lowest
// first), and checks it before anything starts.
package config

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest/actor"
	"github.com/crmpulse/crmpulse/ingest/generic"
	"github.com/crmpulse/crmpulse/ingest/topics"
)

// Durability settings for the embedded log.
const (
	// DurabilityProcess: an acknowledged event survives a crash of the
	// process (it is in the operating system's cache); JetStream flushes
	// to disk every two minutes.
	DurabilityProcess = "process"
	// DurabilityMachine: an acknowledged event survives a crash of the
	// machine (it was synced to disk before the acknowledgement).
	DurabilityMachine = "machine"
)

// Config is everything crmpulse can be told. Each key's environment name is
// CRMPULSE_ and its path in upper case joined by _.
type Config struct {
	Data                   string `koanf:"data"`
	Addr                   string `koanf:"addr"`
	Kafka                  string `koanf:"kafka"`
	KafkaTopic             string `koanf:"kafka_topic"`
	KafkaPartitions        int    `koanf:"kafka_partitions"`
	KafkaReplicationFactor int    `koanf:"kafka_replication_factor"`
	KafkaSASLMechanism     string `koanf:"kafka_sasl_mechanism"`
	KafkaSASLUser          string `koanf:"kafka_sasl_user"`
	KafkaSASLPassword      string `koanf:"kafka_sasl_password"`
	KafkaTLS               bool   `koanf:"kafka_tls"`
	KafkaTLSCA             string `koanf:"kafka_tls_ca"`
	// KafkaSessionTimeout is how long the workers' group waits for a
	// silent worker before it hands its partitions to the others.
	KafkaSessionTimeout time.Duration `koanf:"kafka_session_timeout"`
	// NATS is the NATS server URL of the many-process shape (nats://...),
	// for the queries, the deltas and the shared key-value buckets.
	NATS            string            `koanf:"nats"`
	Demo            bool              `koanf:"demo"`
	Durability      string            `koanf:"durability"`
	Timezone        string            `koanf:"timezone"`
	WeekStart       string            `koanf:"week_start"`
	FiscalYearStart string            `koanf:"fiscal_year_start"`
	PublicURL       string            `koanf:"public_url"`
	LogLevel        string            `koanf:"log_level"`
	LogFormat       string            `koanf:"log_format"`
	Calendar        crmpulse.Calendar `koanf:"calendar"`
	// AlertInterval is the time between two evaluations of the alert
	// rules.
	AlertInterval time.Duration `koanf:"alert_interval"`
	// RetentionDays is how many days events count in reports; older ones
	// are deleted, and a late event older than that is refused. 0 keeps
	// them forever.
	RetentionDays int `koanf:"retention_days"`
	// TransactionsRetentionDays is how many days the transaction list
	// keeps each event's details; older events still count in reports
	// (up to retention_days). 0 keeps them as long as the events.
	TransactionsRetentionDays int `koanf:"transactions_retention_days"`
	// TargetsFile is a CSV file or Excel workbook of activity goals, read
	// at start and served at GET /v1/targets.
	TargetsFile string `koanf:"targets_file"`

	IngestToken string `koanf:"ingest_token"`
	AdminToken  string `koanf:"admin_token"`

	HubSpotSecret              string `koanf:"hubspot_secret"`
	SalesforceSecret           string `koanf:"salesforce_secret"`
	SalesforceOrgID            string `koanf:"salesforce_org_id"`
	DynamicsKey                string `koanf:"dynamics_key"`
	BusinessCentralClientState string `koanf:"businesscentral_client_state"`
	PipedriveUser              string `koanf:"pipedrive_user"`
	PipedrivePassword          string `koanf:"pipedrive_password"`
	ZohoToken                  string `koanf:"zoho_token"`
	GenericSecret              string `koanf:"generic_secret"`
	// Generic maps the JSON of the generic hook to canonical events; it is
	// set in the file only.
	Generic generic.Mapping `koanf:"generic"`
	// Debezium and SalesforceKafka are the change topics read from Kafka
	// (ingest/topics); their tables and topics are set in the file only.
	Debezium        topics.DebeziumConfig   `koanf:"debezium"`
	SalesforceKafka topics.SalesforceConfig `koanf:"salesforce_kafka"`
	// UserLookup reads records back from Business Central and HubSpot to
	// find who acted where a delivery does not say (ingest/actor).
	UserLookup actor.Settings `koanf:"user_lookup"`
	// Alerts holds the inactivity rules and their targets; set in the
	// file only.
	Alerts Alerts `koanf:"alerts"`

	// Security holds sign-in, tokens, TLS and limits (config/security.go).
	Security `koanf:",squash"`
}

// defaults are the values of keys nobody set; every settable scalar key
// is here, since the environment names are derived from this list.
var defaults = map[string]any{
	"data":                         "./data",
	"addr":                         "127.0.0.1:8080",
	"kafka":                        "",
	"kafka_topic":                  "crmpulse-events",
	"kafka_partitions":             12,
	"kafka_replication_factor":     0,
	"kafka_sasl_mechanism":         "",
	"kafka_sasl_user":              "",
	"kafka_sasl_password":          "",
	"kafka_tls":                    false,
	"kafka_tls_ca":                 "",
	"kafka_session_timeout":        "45s",
	"nats":                         "",
	"demo":                         false,
	"durability":                   DurabilityProcess,
	"timezone":                     "UTC",
	"week_start":                   "mon",
	"fiscal_year_start":            "01-01",
	"public_url":                   "",
	"log_level":                    "info",
	"log_format":                   "text",
	"targets_file":                 "",
	"retention_days":               0,
	"transactions_retention_days":  0,
	"calendar.working_days":        []string{"mon", "tue", "wed", "thu", "fri"},
	"calendar.working_hours":       "09:00-17:00",
	"calendar.holidays":            []string{},
	"alert_interval":               "30s",
	"ingest_token":                 "",
	"admin_token":                  "",
	"hubspot_secret":               "",
	"salesforce_secret":            "",
	"salesforce_org_id":            "",
	"dynamics_key":                 "",
	"businesscentral_client_state": "",
	"pipedrive_user":               "",
	"pipedrive_password":           "",
	"zoho_token":                   "",
	"generic_secret":               "",
	"debezium.brokers":             "",
	"debezium.group":               topics.DefaultDebeziumGroup,
	"salesforce_kafka.brokers":     "",
	"salesforce_kafka.group":       topics.DefaultSalesforceGroup,
	"salesforce_kafka.org_id":      "",

	"user_lookup.timeout":                       "2s",
	"user_lookup.cache_ttl":                     "10m",
	"user_lookup.businesscentral.base_url":      "",
	"user_lookup.businesscentral.token":         "",
	"user_lookup.businesscentral.token_url":     "",
	"user_lookup.businesscentral.client_id":     "",
	"user_lookup.businesscentral.client_secret": "",
	"user_lookup.businesscentral.scope":         "https://api.businesscentral.dynamics.com/.default",
	"user_lookup.hubspot.token":                 "",
	"user_lookup.hubspot.base_url":              "https://api.hubapi.com",
	"user_lookup.hubspot.owner_as_user":         false,
}

// Load reads the file (if path is not empty), then the environment, then
// the flags that were set, and validates the result.
func Load(path string, flags *pflag.FlagSet) (*Config, error) {
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(defaults, "."), nil); err != nil {
		return nil, fmt.Errorf("load defaults: %w", err)
	}
	if path != "" {
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return nil, fmt.Errorf("read config file %s: %w", path, err)
		}
	}
	for key, val := range defaults {
		if _, isList := val.([]string); isList {
			continue // lists are set in the file only
		}
		if v, ok := os.LookupEnv(EnvName(key)); ok {
			k.Set(key, v)
		}
	}
	if flags != nil {
		p := posflag.ProviderWithFlag(flags, ".", k, func(f *pflag.Flag) (string, any) {
			key := strings.ReplaceAll(f.Name, "-", "_")
			if _, known := defaults[key]; !known {
				return "", nil
			}
			return key, posflag.FlagVal(flags, f)
		})
		if err := k.Load(p, nil); err != nil {
			return nil, fmt.Errorf("read flags: %w", err)
		}
	}
	var c Config
	if err := k.UnmarshalWithConf("", &c, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := unknownKeys(k); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// unknownKeys refuses keys that name no setting, such as a misspelt one in
// the file, which would otherwise be ignored without a word.
func unknownKeys(k *koanf.Koanf) error {
	var md mapstructure.Metadata
	var probe Config
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		TagName: "koanf", Metadata: &md, Result: &probe, WeaklyTypedInput: true,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(), mapstructure.TextUnmarshallerHookFunc()),
	})
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	// Type errors were reported by the real decoding; only the unused keys
	// matter here.
	_ = dec.Decode(k.Raw())
	if len(md.Unused) > 0 {
		slices.Sort(md.Unused)
		return fmt.Errorf("config %s: no such setting (see crmpulse serve --help and the README)", md.Unused[0])
	}
	return nil
}

// EnvName returns the environment variable of a key path.
func EnvName(key string) string {
	return "CRMPULSE_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Validate checks every key and names the first one that is wrong.
func (c *Config) Validate() error {
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		return fmt.Errorf("config timezone: %q is not an IANA time zone name", c.Timezone)
	}
	if _, err := c.PeriodRules(); err != nil {
		return err
	}
	if c.Durability != DurabilityProcess && c.Durability != DurabilityMachine {
		return fmt.Errorf("config durability: %q must be %s or %s", c.Durability, DurabilityProcess, DurabilityMachine)
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("config addr: %q is not host:port", c.Addr)
	}
	if _, err := ParseCalendar(&c.Calendar, nil, time.UTC); err != nil {
		return fmt.Errorf("config calendar.%w", err)
	}
	if c.AlertInterval <= 0 {
		return fmt.Errorf("config alert_interval: %v must be a positive duration such as 30s", c.AlertInterval)
	}
	if c.RetentionDays < 0 || c.TransactionsRetentionDays < 0 {
		return fmt.Errorf("config retention_days, transactions_retention_days: %d, %d must be 0 (forever) or more",
			c.RetentionDays, c.TransactionsRetentionDays)
	}
	if err := c.Alerts.validate(); err != nil {
		return err
	}
	if err := c.Debezium.Validate(); err != nil {
		return err
	}
	if err := c.SalesforceKafka.Validate(); err != nil {
		return err
	}
	if err := c.UserLookup.Validate(); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config log_level: %q must be debug, info, warn or error", c.LogLevel)
	}
	return c.validateSecurity()
}

// Location returns the organisation's zone.
func (c *Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// PeriodRules returns the week start and fiscal-year start.
func (c *Config) PeriodRules() (crmpulse.PeriodRules, error) {
	ws, ok := weekdays[strings.ToLower(c.WeekStart)]
	if !ok {
		return crmpulse.PeriodRules{}, fmt.Errorf("config week_start: %q must be mon, tue, ... or sun", c.WeekStart)
	}
	start, err := time.Parse("01-02", c.FiscalYearStart)
	if err != nil {
		return crmpulse.PeriodRules{}, fmt.Errorf("config fiscal_year_start: %q must be MM-DD", c.FiscalYearStart)
	}
	return crmpulse.PeriodRules{WeekStart: ws, FiscalMonth: start.Month(), FiscalDay: start.Day()}, nil
}

// ParseHours reads working hours written as "HH:MM-HH:MM".
func ParseHours(s string) ([2]time.Duration, error) {
	var out [2]time.Duration
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return out, fmt.Errorf("%q must be HH:MM-HH:MM", s)
	}
	for i, part := range []string{from, to} {
		t, err := time.Parse("15:04", strings.TrimSpace(part))
		if err != nil {
			return out, fmt.Errorf("%q must be HH:MM-HH:MM", s)
		}
		out[i] = time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute
	}
	if out[1] <= out[0] {
		return out, fmt.Errorf("%q ends before it starts", s)
	}
	return out, nil
}

// IsLoopback reports whether addr listens on a loopback address only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
