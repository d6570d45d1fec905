package crmpulse

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// FuzzIsEntityName checks the hand-written test against the pattern it
// stands for.
func FuzzIsEntityName(f *testing.F) {
	for _, s := range []string{"", "lead", "object_0_5", "Lead", "_x", "0a", "a-b", "a\x00", "é"} {
		f.Add(s)
	}
	pattern := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isEntityName(s), pattern.MatchString(s); got != want {
			t.Errorf("isEntityName(%q) = %v, want %v", s, got, want)
		}
	})
}

// TestValidateBoundsKeyParts checks that every field that becomes part of a
// key in the state is refused when too long or holding a NUL: a record of
// 100,000 bytes was accepted and stopped the worker, since Badger refuses
// a key over 65,000 bytes.
func TestValidateBoundsKeyParts(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	valid := func() Event {
		return Event{ID: "e1", Tenant: "t", Source: "api", User: "u", Entity: "lead", Record: "r", Action: Created, At: now}
	}
	if errs := func() []FieldError { e := valid(); return e.Validate(now) }(); len(errs) != 0 {
		t.Fatalf("a valid event: %v", errs)
	}
	long := strings.Repeat("r", 513)
	for _, c := range []struct {
		field string
		set   func(*Event)
	}{
		{"record", func(e *Event) { e.Record = long }},
		{"record", func(e *Event) { e.Record = strings.Repeat("r", 100_000) }},
		{"record", func(e *Event) { e.Record = "a\x00b" }},
		{"user", func(e *Event) { e.User = long }},
		{"id", func(e *Event) { e.ID = long }},
		{"entity", func(e *Event) { e.Entity = strings.Repeat("a", 65) }},
	} {
		e := valid()
		c.set(&e)
		errs := e.Validate(now)
		if len(errs) != 1 || errs[0].Field != c.field || !strings.Contains(errs[0].Detail, "at most") {
			t.Errorf("%s: %v, want one error on %s saying how long it may be", c.field, errs, c.field)
		}
	}
	e := valid()
	e.Record = strings.Repeat("r", 512)
	if errs := e.Validate(now); len(errs) != 0 {
		t.Errorf("a record of 512 bytes: %v", errs)
	}
}
