package topics_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/crmpulse/crmpulse/config"
	"github.com/crmpulse/crmpulse/ingest/debezium"
)

// The blocks load from the file with the topic names whole, although the
// loader splits keys on dots, and the environment sets their brokers.
func TestConfigFromTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crmpulse.yaml")
	yaml := `
debezium:
  brokers: "kafka-a:9092, kafka-b:9092"
  tables:
    - topic: crm.public.leads
      entity: lead
      key: id
      name: full_name
      created_by: created_by
      updated_by: updated_by
      created_at: created_at
      updated_at: updated_at
      time_unit: us
salesforce_kafka:
  topics: [salesforce.cdc.lead, salesforce.cdc.opportunity]
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CRMPULSE_SALESFORCE_KAFKA_BROKERS", "kafka-c:9092")
	t.Setenv("CRMPULSE_SALESFORCE_ORG_ID", "00D7R0000000OrgUAE")
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}

	dz, ok := cfg.Debezium.Reader()
	if !ok {
		t.Fatal("no Debezium reader")
	}
	if got := cfg.Debezium.Tables[0]; got.Topic != "crm.public.leads" || got.Table != (debezium.Table{
		Entity: "lead", Key: "id", Name: "full_name", CreatedBy: "created_by", UpdatedBy: "updated_by",
		CreatedAt: "created_at", UpdatedAt: "updated_at", TimeUnit: "us"}) {
		t.Errorf("table: got %+v", got)
	}
	if len(dz.Brokers) != 2 || dz.Brokers[1] != "kafka-b:9092" || dz.Group != "crmpulse-debezium" {
		t.Errorf("debezium reader: brokers %q, group %q", dz.Brokers, dz.Group)
	}
	sf, ok := cfg.SalesforceKafka.Reader(cfg.SalesforceOrgID)
	if !ok || len(sf.Topics) != 2 || sf.Brokers[0] != "kafka-c:9092" || sf.Group != "crmpulse-salesforce" {
		t.Errorf("salesforce reader: %v %+v", ok, sf)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crmpulse.yaml")
	yaml := "debezium:\n  brokers: k:9092\n  tables:\n    - topic: crm.public.leads\n      entity: Lead\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(path, nil)
	if err == nil || err.Error() != `config debezium.tables[0].entity: "Lead" must be lowercase letters, digits and _` {
		t.Errorf("got %v", err)
	}
}
