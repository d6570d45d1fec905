package config

import (
	"strings"
	"testing"
)

func TestUnknownKeysAreRefused(t *testing.T) {
	tests := []struct{ yaml, key string }{
		{"addrr: 127.0.0.1:1\n", "addrr"},
		{"calendar:\n  working_hourz: \"09:00-17:00\"\n", "calendar.working_hourz"},
		{"auth:\n  userz: []\n", "auth.userz"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			_, err := Load(writeConfig(t, tt.yaml), nil)
			if err == nil || !strings.Contains(err.Error(), tt.key) {
				t.Errorf("error = %v, want one naming %s", err, tt.key)
			}
		})
	}
}

func TestKnownKeysLoad(t *testing.T) {
	c, err := Load(writeConfig(t, "addr: 127.0.0.1:9999\ntimezone: Europe/Madrid\ncalendar:\n  working_hours: \"08:00-16:00\"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9999" || c.Timezone != "Europe/Madrid" || c.Calendar.WorkingHours != "08:00-16:00" {
		t.Errorf("config = %+v", c)
	}
}
