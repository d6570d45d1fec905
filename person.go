package crmpulse

import "time"

// Person statuses.
const (
	StatusActive      = "active"
	StatusDeactivated = "deactivated"
	StatusLeft        = "left"
	// StatusUnmapped and StatusUnattributed mark report rows that are not
	// people of the directory.
	StatusUnmapped     = "unmapped"
	StatusUnattributed = "unattributed"
)

// Person is one row of the directory: a human who may act in several
// sources under a different user id in each.
type Person struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Email       *string           `json:"email"`
	Team        string            `json:"team"`
	Manager     string            `json:"manager"`
	Office      string            `json:"office"`
	Timezone    string            `json:"timezone"`
	Status      string            `json:"status"`
	StatusSince *time.Time        `json:"status_since"`
	Calendar    *Calendar         `json:"calendar"`
	IDs         map[string]string `json:"ids"`
	// Added is when the person entered the directory.
	Added time.Time `json:"added,omitzero"`
}

// Calendar is a working calendar: which days and hours count as working
// time, in the person's own zone.
type Calendar struct {
	WorkingDays  []string `json:"working_days" koanf:"working_days"`
	WorkingHours string   `json:"working_hours" koanf:"working_hours"`
	Holidays     []string `json:"holidays" koanf:"holidays"`
}
