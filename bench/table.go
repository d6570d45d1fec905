package bench

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// Verdict is how a measured figure compares with its target.
type Verdict string

// Verdicts of a row.
const (
	Pass    Verdict = "pass"
	Fail    Verdict = "FAIL"
	Info    Verdict = "info"
	Skipped Verdict = "skipped"
)

// Row is one line of the results table.
type Row struct {
	Figure string
	Value  string
	Target string
	Verdict
	// Peer is the same work done by PostgreSQL or a bare part, and the
	// ratio of crmpulse to it where that means something.
	Peer string
	Note string
}

// Table collects rows in the order the figures ran.
type Table struct {
	Commit string
	// Load is the machine's load average at the start and the end, since
	// other work on a 2-core machine moves every figure.
	Load [2]string
	Rows []Row
}

// Add appends a row.
func (t *Table) Add(r Row) { t.Rows = append(t.Rows, r) }

// Markdown writes the table with its commit line.
func (t *Table) Markdown(w io.Writer) {
	fmt.Fprintf(w, "commit %s; load average at start %s, at end %s\n\n", t.Commit, t.Load[0], t.Load[1])
	fmt.Fprintln(w, "| figure | measured | target | verdict | peer | note |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- |")
	for _, r := range t.Rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", cell(r.Figure), cell(r.Value),
			cell(r.Target), r.Verdict, cell(r.Peer), cell(r.Note))
	}
}

func cell(s string) string {
	if s == "" {
		return "–"
	}
	return strings.ReplaceAll(s, "|", "/")
}

// verdict compares got with a target that is a floor (more is better) or a
// ceiling (less is better).
func verdict(got, target float64, floor bool) Verdict {
	if floor == (got >= target) {
		return Pass
	}
	return Fail
}

// rate formats events per second with thousands separators.
func rate(perSecond float64) string { return thousands(int64(perSecond+0.5)) + " ev/s" }

// ratio formats a/b as "2.5×" (crmpulse over its peer).
func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "n/a"
	}
	if r := a / b; r < 100 {
		return fmt.Sprintf("%.2f×", r)
	}
	return thousands(int64(a/b)) + "×"
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// loadAverage is the 1, 5 and 15 minute load average from /proc/loadavg.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
