package web

import (
	"net/http"
	"strings"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/crmpulse/crmpulse/aggregate"
	"github.com/crmpulse/crmpulse/problem"
)

// exportColumns are the columns of both exports, CSV and workbook, in order.
var exportColumns = []string{"at", "person", "user", "user_name", "tenant", "source", "entity",
	"record", "record_name", "action", "fields", "id"}

// exportRow is one transaction as the export's cells, in exportColumns order.
func exportRow(t aggregate.Transaction) []string {
	person := ""
	if t.Person != nil {
		person = *t.Person
	}
	return []string{t.At.Format(time.RFC3339Nano), person, t.User, t.UserName, t.Tenant, t.Source,
		t.Entity, t.Record, t.RecordName, string(t.Action), strings.Join(t.Fields, ";"), t.ID}
}

// exportXLSX writes every transaction of q as an Excel workbook, one row per
// transaction, through excelize's stream writer so that a large period
// spills to a temporary file rather than to memory. Cells are text, the
// same text as the CSV export: a spreadsheet does not reinterpret a record
// name such as "=1+1" as a formula or an id as a number.
func (s *Server) exportXLSX(w http.ResponseWriter, q aggregate.Query) {
	f := excelize.NewFile()
	defer f.Close()
	const sheet = "Transactions"
	f.SetSheetName("Sheet1", sheet)
	sw, err := f.NewStreamWriter(sheet)
	if err != nil {
		s.exportFailed(w, err)
		return
	}
	sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"})
	if err := sw.SetRow("A1", cells(exportColumns)); err != nil {
		s.exportFailed(w, err)
		return
	}
	row := 2
	var writeErr error
	err = s.store.EachTransaction(q, s.dir, func(t aggregate.Transaction) bool {
		cell, _ := excelize.CoordinatesToCellName(1, row)
		writeErr = sw.SetRow(cell, cells(exportRow(t)))
		row++
		return writeErr == nil
	})
	if err == nil {
		err = writeErr
	}
	if err == nil {
		err = sw.Flush()
	}
	if err != nil {
		s.exportFailed(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
	w.Header().Set("Content-Disposition", `attachment; filename="crmpulse-transactions.xlsx"`)
	if _, err := f.WriteTo(w); err != nil {
		s.logger.Debug("xlsx export not delivered", "err", err)
	}
}

func (s *Server) exportFailed(w http.ResponseWriter, err error) {
	s.logger.Error("xlsx export failed", "err", err)
	problem.Write(w, http.StatusInternalServerError, "the workbook could not be built", nil)
}

// cells turns strings into string cells, so that nothing is read as a
// number, a date or a formula.
func cells(values []string) []any {
	out := make([]any, len(values))
	for i, v := range values {
		out[i] = excelize.Cell{Value: v}
	}
	return out
}
