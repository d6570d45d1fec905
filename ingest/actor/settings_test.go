package actor_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmpulse/crmpulse/config"
)

// The block loads from the file, its secrets from the environment.
func TestSettingsLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crmpulse.yaml")
	yaml := `
user_lookup:
  timeout: 3s
  businesscentral:
    base_url: https://api.businesscentral.dynamics.com/v2.0/tenant-1/Production
    token_url: https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token
    client_id: crm-app
    user_fields: [systemModifiedBy]
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CRMPULSE_USER_LOOKUP_BUSINESSCENTRAL_CLIENT_SECRET", "app-secret")
	t.Setenv("CRMPULSE_USER_LOOKUP_HUBSPOT_TOKEN", "pat-na1-example")
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.UserLookup
	if s.Timeout != 3*time.Second || s.CacheTTL != 10*time.Minute || s.BusinessCentral.ClientSecret != "app-secret" ||
		s.HubSpot.Token != "pat-na1-example" || s.HubSpot.BaseURL != "https://api.hubapi.com" ||
		len(s.BusinessCentral.UserFields) != 1 {
		t.Errorf("settings: %+v", s)
	}
	if s.Resolver(prometheus.NewRegistry(), slog.New(slog.DiscardHandler)) == nil {
		t.Error("no resolver for two configured sources")
	}
}

func TestSettingsNeedCredentials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crmpulse.yaml")
	yaml := "user_lookup:\n  businesscentral:\n    base_url: https://bc.example.test/v2.0/t/Production\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path, nil); err == nil {
		t.Error("a Business Central lookup without token or client credentials was accepted")
	}
}
