package csvimport

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMappingRefusesUnknownKeys checks that a misspelt key in either
// mapping stops the import with its name and line, rather than being
// left out (a timezone left as UTC, say).
func TestMappingRefusesUnknownKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	events := "tenant: acme\nsource: crm\ntimezon: Europe/Paris\nentity: lead\nrecord: id\n" +
		"events:\n  - action: created\n    user: owner\n    at: created_at\n"
	if _, err := LoadMapping(write("events.yaml", events)); err == nil ||
		!strings.Contains(err.Error(), "timezon") || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("a misspelt timezone: %v, want an error naming timezon at line 3", err)
	}
	if _, err := LoadMapping(write("good.yaml", strings.Replace(events, "timezon:", "timezone:", 1))); err != nil {
		t.Errorf("the same mapping spelt right: %v", err)
	}
	if _, err := LoadPeopleMapping(write("people.yaml", "id: id\nnmae: name\n")); err == nil ||
		!strings.Contains(err.Error(), "nmae") {
		t.Errorf("a misspelt roster key: %v, want an error naming nmae", err)
	}
}
