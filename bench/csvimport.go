package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// historyMapping reads a field-history export: one row per change, as
// Salesforce's OpportunityFieldHistory or a CRM audit log exports them.
const historyMapping = `tenant: history
source: crm
timezone: UTC
entity_column: object
record: record_id
record_name: [record_name]
events:
  - action: updated
    user: changed_by
    at: changed_at
`

// WriteHistoryCSV writes rows field-history rows into dir, with the
// mapping that reads them, and returns both paths. Row i's change time is
// unique, so no two rows are the same event.
func WriteHistoryCSV(dir string, rows, people int, now time.Time) (csvPath, mappingPath string, err error) {
	csvPath, mappingPath = filepath.Join(dir, "history.csv"), filepath.Join(dir, "history-mapping.yaml")
	if err := os.WriteFile(mappingPath, []byte(historyMapping), 0o644); err != nil {
		return "", "", err
	}
	f, err := os.Create(csvPath)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("object,record_id,record_name,changed_by,field,changed_at\n")
	h := History{People: people, Now: now, Events: rows}
	var line []byte
	for i := range rows {
		e := h.Event(i)
		line = append(line[:0], e.Entity...)
		line = append(line, ',')
		line = append(line, e.Record...)
		line = append(line, ",Record "...)
		line = append(line, e.Record...)
		line = append(line, ',')
		line = append(line, e.User...)
		line = append(line, ",stage,"...)
		line = e.At.UTC().AppendFormat(line, time.RFC3339Nano)
		line = append(line, '\n')
		w.Write(line)
	}
	if err := w.Flush(); err != nil {
		return "", "", err
	}
	return csvPath, mappingPath, f.Close()
}

// ImportResult is figure 6.
type ImportResult struct {
	Rows    int
	Command time.Duration // until `crmpulse import` exited: every event acknowledged
	CatchUp time.Duration // then until every event was applied
	Output  string
	Stopped bool // the import ran past its time limit and was stopped
}

// Rate is events/s acknowledged by the import command.
func (r ImportResult) Rate() float64 { return float64(r.Rows) / r.Command.Seconds() }

// AppliedRate is events/s until every event was applied.
func (r ImportResult) AppliedRate() float64 {
	return float64(r.Rows) / (r.Command + r.CatchUp).Seconds()
}

// RunImport is figure 6: `crmpulse import` of the CSV into s, timed. An
// import still running at limit is stopped, and Rows is then what the
// report counts once the server has caught up.
func RunImport(ctx context.Context, s *Server, csvPath, mappingPath string, rows int, limit time.Duration) (ImportResult, error) {
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(cctx, s.Bin, "import", csvPath, "--mapping", mappingPath, "--server", s.URL)
	out, err := cmd.CombinedOutput()
	res := ImportResult{Rows: rows, Command: time.Since(start), Output: string(out)}
	if err != nil && cctx.Err() == nil {
		return res, fmt.Errorf("crmpulse import: %w: %.500s", err, out)
	}
	res.Stopped = err != nil
	if res.CatchUp, err = s.WaitReady(ctx, 30*time.Minute); err != nil {
		return res, err
	}
	if res.Stopped {
		n, err := countedChanges(ctx, s, "history", start.Add(-historySpan-24*time.Hour))
		res.Rows, res.Output = int(n), fmt.Sprintf("stopped after %s; %d events applied", limit, n)
		return res, err
	}
	return res, nil
}
