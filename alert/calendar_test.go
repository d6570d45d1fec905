package alert

import (
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/config"
)

func TestWorkingTimeAcrossDaylightSaving(t *testing.T) {
	madrid, err := time.LoadLocation("Europe/Madrid")
	if err != nil {
		t.Fatal(err)
	}
	cal, err := config.ParseCalendar(&crmpulse.Calendar{
		WorkingDays: []string{"mon", "tue", "wed", "thu", "fri"}, WorkingHours: "09:00-17:00",
		Holidays: []string{"2026-03-30"},
	}, nil, madrid)
	if err != nil {
		t.Fatal(err)
	}
	// Friday 27 March 16:00 CET; clocks go forward on Sunday 29 March and
	// Monday is a holiday, so eight working hours end on Tuesday 16:00
	// CEST: 14:00 UTC.
	from := time.Date(2026, 3, 27, 16, 0, 0, 0, madrid)
	tests := []struct {
		d    time.Duration
		want time.Time
	}{
		{time.Hour, time.Date(2026, 3, 27, 17, 0, 0, 0, madrid)},
		{8 * time.Hour, time.Date(2026, 3, 31, 16, 0, 0, 0, madrid)},
		{9 * time.Hour, time.Date(2026, 3, 31, 17, 0, 0, 0, madrid)},
		{10 * time.Hour, time.Date(2026, 4, 1, 10, 0, 0, 0, madrid)},
	}
	for _, tt := range tests {
		got := workingAfter(&cal, from, tt.d)
		if !got.Equal(tt.want) {
			t.Errorf("%v after Friday 16:00 = %s, want %s", tt.d, got, tt.want)
		}
		if back := workingBefore(&cal, got, tt.d); !back.Equal(from) {
			t.Errorf("%v before %s = %s, want %s", tt.d, got, back, from)
		}
	}
	if got := workingAfter(&cal, from, 8*time.Hour).UTC(); got.Hour() != 14 {
		t.Errorf("Tuesday 16:00 in Madrid = %s, want 14:00 UTC", got)
	}
}

func TestNoWorkingDaysNeverFires(t *testing.T) {
	cal, err := config.ParseCalendar(&crmpulse.Calendar{WorkingDays: []string{}, WorkingHours: "09:00-17:00"}, nil, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if got := workingAfter(&cal, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Hour); !got.Equal(never) {
		t.Errorf("workingAfter with no working days = %s, want never", got)
	}
}
