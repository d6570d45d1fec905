package alert_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest/csvimport"
)

// sampleData returns the public data set's folder; it fails under CI=true
// when the data set is missing and skips elsewhere.
func sampleData(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(os.Getenv("CRMPULSE_SAMPLE_DATA"), "crm-sales-opportunities")
	if _, err := os.Stat(filepath.Join(dir, "sales_pipeline.csv")); os.Getenv("CRMPULSE_SAMPLE_DATA") == "" || err != nil {
		msg := "set CRMPULSE_SAMPLE_DATA to the folder holding crm-sales-opportunities/ (make test does)"
		if os.Getenv("CI") == "true" {
			t.Fatal("required under CI=true: " + msg)
		}
		t.Skip(msg)
	}
	return dir
}

// readCSV returns the rows of a CSV file after its header, by column name.
func readCSV(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, r := range rows[1:] {
		m := map[string]string{}
		for i, col := range rows[0] {
			m[col] = r[i]
		}
		out = append(out, m)
	}
	return out
}

// loadSample loads the roster as of the data's first day and the pipeline
// through the example's mappings into the fixture's state.
func (f *fixture) loadSample(dir string) {
	t := f.t
	t.Helper()
	firstDay := time.Date(2016, 10, 20, 0, 0, 0, 0, time.UTC)
	pm, err := csvimport.LoadPeopleMapping(filepath.Join("..", "examples", "crm-sales-opportunities", "roster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	roster, err := os.Open(filepath.Join(dir, "sales_teams.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer roster.Close()
	people, _, err := csvimport.ReadPeople(roster, pm)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range people {
		f.person(p, firstDay)
	}

	m, err := csvimport.LoadMapping(filepath.Join("..", "examples", "crm-sales-opportunities", "pipeline.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pipeline, err := os.Open(filepath.Join(dir, "sales_pipeline.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer pipeline.Close()
	_, err = csvimport.ReadEvents(pipeline, m, 1000, func(events []crmpulse.Event) error {
		batch := make([]crmpulse.Record, len(events))
		for i, e := range events {
			f.offset++
			batch[i] = crmpulse.Record{Partition: 0, Offset: f.offset, Event: e}
		}
		_, err := f.store.Apply(context.Background(), batch)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// quietOracle lists, straight from the CSV files, the agents whose working
// time (Monday to Friday, 09:00 to 17:00 UTC) from their last engage or
// close date (midnight UTC), or from firstDay for those with none, to now
// is at least threshold.
func quietOracle(t *testing.T, dir string, firstDay, now time.Time, threshold time.Duration) (quiet, never []string) {
	t.Helper()
	last := map[string]time.Time{}
	for _, r := range readCSV(t, filepath.Join(dir, "sales_pipeline.csv")) {
		for _, col := range []string{"engage_date", "close_date"} {
			if r[col] == "" {
				continue
			}
			d, err := time.Parse(time.DateOnly, r[col])
			if err != nil {
				t.Fatal(err)
			}
			if d.After(last[r["sales_agent"]]) {
				last[r["sales_agent"]] = d
			}
		}
	}
	for _, r := range readCSV(t, filepath.Join(dir, "sales_teams.csv")) {
		agent := r["sales_agent"]
		from, ok := last[agent]
		if !ok {
			from = firstDay
			never = append(never, agent)
		}
		// Count the working hours hour by hour: the dates are midnights,
		// so every working hour is whole.
		var worked time.Duration
		for h := from; h.Before(now) && worked < threshold; h = h.Add(time.Hour) {
			if wd := h.Weekday(); wd != time.Saturday && wd != time.Sunday && h.Hour() >= 9 && h.Hour() < 17 {
				worked += time.Hour
			}
		}
		if worked >= threshold {
			quiet = append(quiet, agent)
		}
	}
	slices.Sort(quiet)
	slices.Sort(never)
	return quiet, never
}

func TestSampleDataFiresForTheQuiet(t *testing.T) {
	dir := sampleData(t)
	firstDay := time.Date(2016, 10, 20, 0, 0, 0, 0, time.UTC)
	dayAfter := time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, threshold := range []time.Duration{16 * time.Hour, 40 * time.Hour} {
		t.Run(fmt.Sprint(threshold), func(t *testing.T) {
			f := newFixture(t, rule(threshold, time.Hour, 24*time.Hour))
			f.loadSample(dir)
			f.at(dayAfter)

			wantQuiet, never := quietOracle(t, dir, firstDay, dayAfter, threshold)
			wantNever := []string{"Carl Lin", "Carol Thompson", "Elizabeth Anderson", "Mei-Mei Johns", "Natalya Ivanova"}
			if !slices.Equal(never, wantNever) {
				t.Fatalf("the oracle finds %q never active, want %q", never, wantNever)
			}
			var got []string
			for _, st := range f.hook.states(t) {
				if st.Kind != "person_inactive" || st.State != "firing" {
					t.Errorf("unexpected notice %+v", st)
					continue
				}
				got = append(got, st.Person.ID)
			}
			slices.Sort(got)
			if !slices.Equal(got, wantQuiet) {
				t.Errorf("fired for %q\nwant %q", got, wantQuiet)
			}
			for _, name := range wantNever {
				if !slices.Contains(got, name) {
					t.Errorf("%s never touched a record and was not alerted on", name)
				}
			}
			if len(got) == len(wantNever) || len(got) >= 35 {
				t.Errorf("%d alerts: the threshold should separate the quiet from the active", len(got))
			}
		})
	}
}
