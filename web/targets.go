package web

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/xuri/excelize/v2"

	"github.com/crmpulse/crmpulse"
)

// Target is an activity goal: how many records or changes a person, or a
// team as a whole, should reach in a named period.
type Target struct {
	// Person is a person's id in the directory; Team a team's name.
	// Exactly one is set.
	Person string `json:"person,omitempty"`
	Team   string `json:"team,omitempty"`
	// Period is one of the named periods of the report (not custom).
	Period string `json:"period"`
	// Measure is records or changes.
	Measure string `json:"measure"`
	// Entity narrows the goal to one entity; empty means all of them.
	Entity string `json:"entity,omitempty"`
	Target int    `json:"target"`
}

// TargetsError lists every bad row of a targets file by line (the CSV
// line, or the worksheet's row number).
type TargetsError struct {
	File string
	Errs []crmpulse.FieldError
}

func (e *TargetsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "targets %s:", e.File)
	for _, fe := range e.Errs {
		fmt.Fprintf(&b, " line %d %s: %s;", fe.Line, fe.Field, fe.Detail)
	}
	return strings.TrimSuffix(b.String(), ";")
}

// LoadTargets reads goals from a CSV file or, when its name ends in .xlsx,
// from the first worksheet of an Excel workbook, where planning usually
// lives. The first row names the columns: person or team, period, measure,
// target, and optionally entity; other columns are ignored.
func LoadTargets(path string) ([]Target, error) {
	var rows [][]string
	var err error
	if strings.EqualFold(filepath.Ext(path), ".xlsx") {
		rows, err = workbookRows(path)
	} else {
		rows, err = csvRows(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read targets %s: %w", path, err)
	}
	return parseTargets(path, rows)
}

func workbookRows(path string) ([][]string, error) {
	f, err := excelize.OpenFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sheets := f.GetSheetList()
	if len(sheets) == 0 {
		return nil, errors.New("the workbook has no worksheet")
	}
	return f.GetRows(sheets[0])
}

func csvRows(path string) ([][]string, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	r := csv.NewReader(file)
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	var rows [][]string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return nil, err
		}
		rows = append(rows, rec)
	}
}

// parseTargets checks every row and returns all the goals, or every
// problem found.
func parseTargets(path string, rows [][]string) ([]Target, error) {
	if len(rows) == 0 {
		return nil, &TargetsError{path, []crmpulse.FieldError{{Line: 1, Detail: "the file is empty; the first row names the columns"}}}
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[strings.ToLower(strings.TrimSpace(name))] = i
	}
	var errs []crmpulse.FieldError
	for _, need := range []string{"period", "measure", "target"} {
		if _, ok := col[need]; !ok {
			errs = append(errs, crmpulse.FieldError{Line: 1, Field: need, Detail: "column missing"})
		}
	}
	if len(errs) > 0 {
		return nil, &TargetsError{path, errs}
	}
	cell := func(row []string, name string) string {
		if i, ok := col[name]; ok && i < len(row) {
			return strings.TrimSpace(row[i])
		}
		return ""
	}
	var targets []Target
	for n, row := range rows[1:] {
		line := n + 2
		bad := func(field, detail string) {
			errs = append(errs, crmpulse.FieldError{Line: line, Field: field, Detail: detail})
		}
		if slices.IndexFunc(row, func(c string) bool { return strings.TrimSpace(c) != "" }) < 0 {
			continue
		}
		t := Target{Person: cell(row, "person"), Team: cell(row, "team"), Period: cell(row, "period"),
			Measure: strings.ToLower(cell(row, "measure")), Entity: cell(row, "entity")}
		if (t.Person == "") == (t.Team == "") {
			bad("person", "name a person or a team, not both")
		}
		if !slices.Contains(crmpulse.PeriodNames, t.Period) || t.Period == crmpulse.PeriodCustom {
			bad("period", fmt.Sprintf("%q is not a named period", t.Period))
		}
		if t.Measure != "records" && t.Measure != "changes" {
			bad("measure", "must be records or changes")
		}
		goal, err := strconv.Atoi(cell(row, "target"))
		if err != nil || goal < 0 {
			bad("target", "must be a whole number, 0 or more")
		}
		t.Target = goal
		targets = append(targets, t)
	}
	if len(errs) > 0 {
		return nil, &TargetsError{path, errs}
	}
	return targets, nil
}

func (s *Server) serveTargets(w http.ResponseWriter, r *http.Request) {
	items := s.cfg.Targets
	if items == nil {
		items = []Target{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": nil})
}
