package e2e

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

const year2017 = "period=custom&from=2017-01-01T00:00:00Z&to=2018-01-01T00:00:00Z&tz=UTC"

// pipelineOracle counts, straight from sales_pipeline.csv and without any
// crmpulse code, each agent's opportunities created (engage_date) and
// updated (close_date) in [from, to), and the distinct opportunities they
// touched there.
func pipelineOracle(t *testing.T, dir string, from, to time.Time) map[string]map[string]int {
	t.Helper()
	rows := readCSV(t, dir, "sales_pipeline.csv")
	in := func(date string) bool {
		if date == "" {
			return false
		}
		d, err := time.Parse("2006-01-02", date)
		if err != nil {
			t.Fatalf("oracle: bad date %q", date)
		}
		return !d.Before(from) && d.Before(to)
	}
	out := map[string]map[string]int{}
	touched := map[string]map[string]bool{}
	for _, r := range rows {
		id, agent, engage, closed := r[0], r[1], r[5], r[6]
		if out[agent] == nil {
			out[agent] = map[string]int{"created": 0, "updated": 0, "records": 0}
			touched[agent] = map[string]bool{}
		}
		if in(engage) {
			out[agent]["created"]++
			touched[agent][id] = true
		}
		if in(closed) {
			out[agent]["updated"]++
			touched[agent][id] = true
		}
	}
	for agent, ids := range touched {
		out[agent]["records"] = len(ids)
	}
	return out
}

// roster returns the agents of sales_teams.csv.
func roster(t *testing.T, dir string) []string {
	t.Helper()
	rows := readCSV(t, dir, "sales_teams.csv")
	var names []string
	for _, r := range rows {
		names = append(names, r[0])
	}
	return names
}

// loadSample runs the example's two commands against s.
func loadSample(t *testing.T, s *server, dir string) {
	t.Helper()
	out, errOut, code := s.crmpulse("users", "import", filepath.Join(dir, "sales_teams.csv"),
		"--mapping", "examples/crm-sales-opportunities/roster.yaml")
	if code != 0 {
		t.Fatalf("users import: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = s.crmpulse("import", filepath.Join(dir, "sales_pipeline.csv"),
		"--mapping", "examples/crm-sales-opportunities/pipeline.yaml")
	if code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "8800 rows") || !strings.Contains(out, "500 rows without events") {
		t.Errorf("import summary = %q, want 8800 rows and 500 rows without events", out)
	}
}

// checkYear2017 compares the report for 2017 with the oracle: every agent of
// the roster is there, each with exactly the oracle's figures.
func checkYear2017(t *testing.T, s *server, dir string) {
	t.Helper()
	want := pipelineOracle(t, dir, time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC))
	got := s.report(year2017).figures("opportunity")
	people := roster(t, dir)
	if len(got) != len(people) {
		t.Errorf("report has %d rows, want the roster's %d", len(got), len(people))
	}
	zeros := 0
	for _, name := range people {
		w := want[name]
		if w == nil {
			w = map[string]int{"created": 0, "updated": 0, "records": 0}
			zeros++
		}
		g, ok := got[name]
		if !ok {
			t.Errorf("%s is missing from the report", name)
			continue
		}
		for _, k := range []string{"created", "updated", "records"} {
			if g[k] != w[k] {
				t.Errorf("%s opportunity %s = %d, want %d", name, k, g[k], w[k])
			}
		}
	}
	if zeros != 5 {
		t.Errorf("%d people own no opportunity, want 5", zeros)
	}
}

// backends are the event logs the server runs on: the embedded JetStream,
// and Kafka (franz-go's kfake, in this process, speaking the real protocol).
var backends = []struct {
	name  string
	flags func(t *testing.T) []string
}{
	{"jetstream", func(t *testing.T) []string { return nil }},
	{"kafka", func(t *testing.T) []string {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			t.Fatalf("start kfake: %v", err)
		}
		t.Cleanup(c.Close)
		return []string{"--kafka", strings.Join(c.ListenAddrs(), ",")}
	}},
}

func TestSampleReportMatchesCSV(t *testing.T) {
	dir := sampleData(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := startServerWith(t, "", b.flags(t))
			checkSampleLoads(t, s, dir)
		})
	}
}

// checkSampleLoads loads the sample twice and restarts the server, checking
// the report against the oracle each time.
func checkSampleLoads(t *testing.T, s *server, dir string) {
	t.Helper()
	loadSample(t, s, dir)
	s.waitReady()
	checkYear2017(t, s, dir)

	// A second load of the same files changes no figure.
	before := s.report(year2017)
	loadSample(t, s, dir)
	s.waitReady()
	if after := s.report(year2017); !reflect.DeepEqual(before, after) {
		t.Errorf("loading the files twice changed the report")
	}
	checkYear2017(t, s, dir)

	// A restart keeps everything.
	s.stop()
	s.start()
	if after := s.report(year2017); !reflect.DeepEqual(before, after) {
		t.Errorf("the report changed across a restart")
	}
}
