package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func loadYAML(t *testing.T, text string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "crmpulse.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(path, nil)
}

const alertsYAML = `
calendar:
  working_days: [mon, tue, wed, thu, fri]
  working_hours: "09:00-17:00"
  holidays: ["2026-12-25"]
alerts:
  targets:
    - name: managers
      webhook: {url: "https://hooks.example.com/crm"}
    - name: sales-slack
      slack: {url: "https://hooks.slack.com/services/x"}
    - name: sales-teams
      teams: {url: "https://example.webhook.office.com/x"}
    - name: sales-mail
      email:
        to: ["sales-managers@example.com"]
        from: "crmpulse@example.com"
        smtp: "smtp.example.com:587"
        username_env: CRMPULSE_SMTP_USER
        password_env: CRMPULSE_SMTP_PASSWORD
  rules:
    - name: quiet-two-days
      watch: {everyone: true}
      inactive_for: 16h
      pending: 1h
      repeat: 24h
      notify: [managers, sales-slack]
    - name: central
      watch: [{team: Central}, {office: East}, {people: ["Carl Lin"]}]
      inactive_for: 8h
      notify: [sales-mail]
`

func TestAlertsFromTheFile(t *testing.T) {
	c, err := loadYAML(t, alertsYAML)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(c.Alerts.Targets), 4; got != want {
		t.Fatalf("targets = %d, want %d", got, want)
	}
	r := c.Alerts.Rules[0]
	if r.InactiveFor != 16*time.Hour || r.Pending != time.Hour || r.Repeat != 24*time.Hour {
		t.Errorf("durations = %v %v %v, want 16h 1h 24h", r.InactiveFor, r.Pending, r.Repeat)
	}
	if len(r.Watches) != 1 || !r.Watches[0].Everyone {
		t.Errorf("watch = %+v, want everyone", r.Watches)
	}
	w := c.Alerts.Rules[1].Watches
	if len(w) != 3 || w[0].Team != "Central" || w[1].Office != "East" || w[2].People[0] != "Carl Lin" {
		t.Errorf("watch list = %+v", w)
	}
	if got := c.Alerts.Targets[3].Email.PasswordEnv; got != "CRMPULSE_SMTP_PASSWORD" {
		t.Errorf("password_env = %q", got)
	}
}

func TestAlertErrorsNameTheKey(t *testing.T) {
	tests := []struct{ from, to, want string }{
		{"inactive_for: 16h\n      pending: 1h", "inactive_for: soon\n      pending: 1h", "inactive_for"},
		{"inactive_for: 8h", "inactive_for: 0s", "alerts.rules[1].inactive_for"},
		{"notify: [managers, sales-slack]", "notify: [managers, nobody]", `alerts.rules[0].notify: "nobody"`},
		{"watch: {everyone: true}", "watch: {everybody: true}", "alerts.rules[0].watch"},
		{"https://hooks.slack.com/services/x", "ftp://x", "alerts.targets[1].slack.url"},
		{`from: "crmpulse@example.com"`, `from: "nobody"`, "alerts.targets[3].email.from"},
		{`smtp: "smtp.example.com:587"`, `smtp: "smtp.example.com"`, "alerts.targets[3].email.smtp"},
		{"- name: sales-teams", "- name: managers", `alerts.targets[2].name: "managers"`},
		{"working_days: [mon,", "working_days: [monday,", "calendar.working_days"},
		{`holidays: ["2026-12-25"]`, `holidays: ["25/12"]`, "calendar.holidays"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			text := strings.Replace(alertsYAML, tt.from, tt.to, 1)
			if text == alertsYAML {
				t.Fatalf("%q is not in the YAML", tt.from)
			}
			_, err := loadYAML(t, text)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one naming %s", err, tt.want)
			}
		})
	}
}
