package aggregate

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// checkJSON checks that r.AppendJSON writes what encoding/json does.
func checkJSON(t *testing.T, what string, r Report) {
	t.Helper()
	want, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.AppendJSON(nil); !bytes.Equal(got, want) {
		t.Errorf("%s: AppendJSON\n%s\nwant\n%s", what, got, want)
	}
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	name, team := `Zoë "Z" <z&z>`+"\u2028\x01\xff", "North\\South"
	at := time.Date(2026, 3, 29, 1, 59, 59, 120000000, time.FixedZone("", 5*3600+45*60))
	for _, r := range []Report{
		{},
		{Entities: []string{}, Users: []Row{}, Totals: map[string]Figures{}, MissingPartitions: []string{}},
		{
			Period:   PeriodInfo{Name: "custom", From: at, To: at.Add(time.Hour).UTC(), TZ: "Asia/Kathmandu"},
			Entities: []string{"lead", "tab\tentity"},
			Users: []Row{
				{ID: "p1", Name: &name, Team: &team, Status: "active", LastActivity: &at,
					Counts: map[string]Figures{"lead": {1, 2, 3, 4, 10, 3}, "account": {Changes: -1}}, Total: Total{10, 3}},
				{ID: "hubspot:9", Status: "unmapped"},
			},
			Totals: map[string]Figures{"lead": {Records: 1 << 40}},
			Series: Series{Interval: "day", Points: []Point{{T: "2026-03-29", Changes: map[string]int{"lead": 2, "a": 1},
				Records: map[string]int{}}, {T: "x"}}},
			Partial: true, MissingPartitions: []string{"3"},
		},
	} {
		checkJSON(t, "report", r)
	}
}
