package crmpulse

import (
	"regexp"
	"testing"
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
