package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/xuri/excelize/v2"
)

// hostileName is a record name that would run script if the page ever
// wrote CRM text as HTML.
const hostileName = `<img src=x onerror=alert(1)>`

// seller is one person of the seeded team.
type seller struct{ id, name, team, user string }

var sellers = []seller{
	{"ana", "Ana Ruiz", "Central", "u-1"}, {"ben", "Ben Okafor", "Central", "u-2"},
	{"chloe", "Chloé Martin", "Central", "u-3"}, {"dev", "Dev Patel", "East", "u-4"},
	{"eva", "Eva Novak", "East", "u-5"}, {"femi", "Femi Adeyemi", "East", "u-6"},
	{"gus", "Gus Lindqvist", "West", "u-7"}, {"hana", "Hana Sato", "West", "u-8"},
}

var entities = []string{"lead", "opportunity", "account", "contact"}

// tally is the test's own count of the seeded events, per person id.
type tally struct {
	records map[string]map[string]bool // person -> entity/record
	changes map[string]int
}

// seedTeam puts the sellers in the directory and posts n events spread
// over the last five days (all inside last_7_days), one of them on a
// record with a hostile name, and returns the test's own count.
func seedTeam(t *testing.T, s *server, token string, n int) tally {
	t.Helper()
	for _, p := range sellers {
		body := mustJSON(t, map[string]any{"name": p.name, "team": p.team, "status": "active",
			"ids": map[string]string{"api": p.user}})
		if code := s.do("PUT", "/v1/users/"+p.id, token, body, nil); code != http.StatusOK {
			t.Fatalf("PUT /v1/users/%s: %d", p.id, code)
		}
	}
	rng := rand.New(rand.NewPCG(6, 6))
	tl := tally{records: map[string]map[string]bool{}, changes: map[string]int{}}
	now := time.Now().UTC()
	var batch []any
	for i := range n {
		// Skewed, so that the ranking is clear: the first sellers work most.
		p := sellers[min(int(rng.ExpFloat64()*2.5), len(sellers)-1)]
		entity := entities[rng.IntN(len(entities))]
		record := fmt.Sprintf("%s-%d", strings.ToUpper(entity[:3]), rng.IntN(n/2))
		name := "Deal " + record
		if i == 0 {
			name = hostileName
		}
		action := []string{"created", "updated", "updated"}[rng.IntN(3)]
		at := now.Add(-time.Duration(rng.Int64N(int64(5 * 24 * time.Hour))))
		if i == 0 {
			at = now.Add(-time.Minute) // the newest, on the table's first page
		}
		batch = append(batch, map[string]any{"id": fmt.Sprintf("seed-%d", i), "user": p.user,
			"entity": entity, "record": record, "record_name": name, "action": action,
			"at": at.Format(time.RFC3339Nano)})
		if tl.records[p.id] == nil {
			tl.records[p.id] = map[string]bool{}
		}
		tl.records[p.id][entity+"/"+record] = true
		tl.changes[p.id]++
	}
	postEvents(t, s, token, batch...)
	return tl
}

func postEvents(t *testing.T, s *server, token string, events ...any) {
	t.Helper()
	if code := s.do("POST", "/v1/events", token, mustJSON(t, events), nil); code != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %d", code)
	}
}

// event is one event now, by a seller, on a named record.
func event(id, user, record string) map[string]any {
	return map[string]any{"id": id, "user": user, "entity": "opportunity", "record": record,
		"record_name": "Live " + record, "action": "updated", "at": time.Now().UTC().Format(time.RFC3339Nano)}
}

// eval runs JavaScript in the page.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitJS polls a JavaScript condition until it holds or a minute passes.
func waitJS(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond)); err == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	dump, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({seq: state.seq,
		snapshots: state.snapshots, resumes: state.resumes, deltas: state.deltas,
		status: document.getElementById("status").textContent, txs: state.txs.length})`))
	t.Fatalf("timed out waiting for %s (%s); page state %s", what, cond, dump)
}

// countDialogs counts the JavaScript dialogs the page opens.
func countDialogs(t *testing.T, ctx context.Context) *atomic.Int32 {
	t.Helper()
	var n atomic.Int32
	err := chromedp.Listen(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			n.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return &n
}

// pageFigures reads the people table: id -> [records, changes].
func pageFigures(t *testing.T, ctx context.Context) map[string][2]int {
	t.Helper()
	rows := eval[[][]any](t, ctx, `[...document.querySelectorAll("#people tbody tr")].map(tr =>
		[tr.dataset.id, Number(tr.cells[3].textContent), Number(tr.cells[4].textContent)])`)
	out := map[string][2]int{}
	for _, r := range rows {
		out[r[0].(string)] = [2]int{int(r[1].(float64)), int(r[2].(float64))}
	}
	return out
}

func (tl tally) figures() map[string][2]int {
	out := map[string][2]int{}
	for _, p := range sellers {
		out[p.id] = [2]int{len(tl.records[p.id]), tl.changes[p.id]}
	}
	return out
}

func sameFigures(got, want map[string][2]int) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// waitFigures polls the people table until it shows want.
func waitFigures(t *testing.T, ctx context.Context, want map[string][2]int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var got map[string][2]int
	for time.Now().Before(deadline) {
		if got = pageFigures(t, ctx); sameFigures(got, want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the page shows\n%v\nwant\n%v", got, want)
}

// TestDashboardFigures opens the page on a seeded team and checks that the
// people table and the leaderboard show the test's own count, that the
// targets from a CSV file show beside them, that the hostile record name
// shows literally and runs nothing, and that a new event appears without
// a reload.
func TestDashboardFigures(t *testing.T) {
	ctx := browser(t)
	targets := filepath.Join(t.TempDir(), "targets.csv")
	os.WriteFile(targets, []byte("person,team,period,measure,target\nana,,last_7_days,records,40\n,Central,last_7_days,records,90\n"), 0o644)
	s := startServer(t, "", "CRMPULSE_TARGETS_FILE="+targets)
	tl := seedTeam(t, s, "", 200)
	s.waitReady()
	dialogs := countDialogs(t, ctx)

	if err := chromedp.Do(ctx, chromedp.Navigate(s.url+"/?period=last_7_days&tz=UTC")); err != nil {
		t.Fatal(err)
	}
	want := tl.figures()
	waitFigures(t, ctx, want)

	// The leaderboard ranks by records, with the count shown.
	board := eval[[][]string](t, ctx, `[...document.querySelectorAll("#leaderboard tbody tr")].map(tr =>
		[tr.dataset.id, tr.cells[0].textContent, tr.cells[3].textContent, tr.cells[4].textContent])`)
	if len(board) != len(sellers) {
		t.Fatalf("leaderboard has %d rows, want %d", len(board), len(sellers))
	}
	last := 1 << 30
	for i, row := range board {
		n := want[row[0]][0]
		if row[1] != fmt.Sprint(i+1) || row[2] != fmt.Sprint(n) || n > last {
			t.Errorf("leaderboard row %d = %v, want rank %d with %d records, in order", i, row, i+1, n)
		}
		last = n
		if row[0] == "ana" && !strings.HasSuffix(row[3], "% of 40") {
			t.Errorf("ana's target cell = %q, want a share of 40", row[3])
		}
	}
	team := eval[string](t, ctx, `document.querySelector("#summary").textContent`)
	if !strings.Contains(team, "/ 90Central team target") {
		t.Errorf("the summary %q does not show the Central team's target of 90", team)
	}

	// The hostile name is text, and no image or dialog came of it.
	waitJS(t, ctx, "the hostile record in the table",
		`[...document.querySelectorAll("#transactions td")].some(td => td.textContent === `+"`"+hostileName+"`"+`)`)
	if n := eval[int](t, ctx, `document.querySelectorAll("img").length`); n != 0 {
		t.Errorf("the page holds %d img elements; CRM text was parsed as HTML", n)
	}

	// A new event moves the figures and the table without a reload.
	eval[bool](t, ctx, `window.notReloaded = true`)
	postEvents(t, s, "", event("live-1", "u-8", "OPP-LIVE-1"))
	waitJS(t, ctx, "the new event in the table",
		`document.querySelector("#transactions tbody tr td:nth-child(4)").textContent === "Live OPP-LIVE-1"`)
	f := want["hana"]
	want["hana"] = [2]int{f[0] + 1, f[1] + 1}
	waitFigures(t, ctx, want)
	if !eval[bool](t, ctx, `window.notReloaded === true`) {
		t.Error("the page reloaded to show the event")
	}
	if n := dialogs.Load(); n != 0 {
		t.Errorf("the page opened %d JavaScript dialogs", n)
	}
}

// barCenter returns where on the page a person's bar is drawn.
func barCenter(t *testing.T, ctx context.Context, id string) (x, y float64) {
	t.Helper()
	xy := eval[[]float64](t, ctx, fmt.Sprintf(`(() => {
		const c = state.bars, i = c.$rows.findIndex(r => r.id === %q);
		const r = c.canvas.getBoundingClientRect();
		for (let d = 0; d < c.data.datasets.length; d++) {
			const bar = c.getDatasetMeta(d).data[i].getProps(["x", "y", "base"], true);
			if (bar.base - bar.y > 4) return [r.left + bar.x, r.top + (bar.y + bar.base) / 2];
		}
		return [];
	})()`, id))
	if len(xy) != 2 {
		t.Fatalf("%s has no bar to click", id)
	}
	return xy[0], xy[1]
}

// TestDashboardExportPerson clicks a person's bar and checks that the table
// and both exports, CSV and workbook, hold exactly that person's rows;
// then does the same from a leaderboard row.
func TestDashboardExportPerson(t *testing.T) {
	ctx := browser(t)
	s := startServer(t, "")
	tl := seedTeam(t, s, "", 150)
	s.waitReady()
	if err := chromedp.Do(ctx, chromedp.Navigate(s.url+"/?period=last_7_days&tz=UTC")); err != nil {
		t.Fatal(err)
	}
	waitFigures(t, ctx, tl.figures())
	waitJS(t, ctx, "the bars drawn", `!!state.bars && !state.bars.animating`)

	x, y := barCenter(t, ctx, "ben")
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(x, y)); err != nil {
		t.Fatal(err)
	}
	checkPersonExport(t, ctx, s, "ben", "Ben Okafor", tl.changes["ben"])

	if err := chromedp.Do(ctx, chromedp.Click(`#leaderboard tbody tr[data-id="dev"]`)); err != nil {
		t.Fatal(err)
	}
	checkPersonExport(t, ctx, s, "dev", "Dev Patel", tl.changes["dev"])
}

func checkPersonExport(t *testing.T, ctx context.Context, s *server, id, name string, want int) {
	t.Helper()
	waitJS(t, ctx, "the table filtered to "+id, fmt.Sprintf(`(() => {
		const rows = [...document.querySelectorAll("#transactions tbody tr")];
		return new URLSearchParams(location.search).get("person") === %q && rows.length === %d &&
			rows.every(tr => tr.cells[1].textContent === %q);
	})()`, id, want, name))

	for _, format := range []string{"csv", "xlsx"} {
		href := eval[string](t, ctx, `document.querySelector("#export-`+format+`").getAttribute("href")`)
		u, _ := url.Parse(href)
		if u.Query().Get("user") != id || u.Query().Get("format") != format {
			t.Fatalf("export link %s does not ask for %s as %s", href, id, format)
		}
		resp, err := http.Get(s.url + href)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", href, resp.StatusCode, body)
		}
		var rows [][]string
		if format == "csv" {
			rows, err = csv.NewReader(bytes.NewReader(body)).ReadAll()
		} else {
			rows, err = workbookRows(body)
		}
		if err != nil {
			t.Fatalf("read the %s export: %v", format, err)
		}
		if len(rows) != want+1 || rows[0][1] != "person" {
			t.Fatalf("the %s export has %d rows, want a header and %d rows", format, len(rows), want)
		}
		for _, r := range rows[1:] {
			if r[1] != id {
				t.Errorf("the %s export has a row of %q: %v", format, r[1], r)
			}
		}
	}
}

func workbookRows(data []byte) ([][]string, error) {
	f, err := excelize.OpenReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.GetRows(f.GetSheetList()[0])
}

// blockLive makes the page's websocket connections fail, as a dead link
// would, until unblockLive.
const blockLive = `(() => {
	window.RealWebSocket = window.RealWebSocket || window.WebSocket;
	window.WebSocket = class extends EventTarget {
		constructor() { super(); this.readyState = 3; setTimeout(() => this.onclose && this.onclose({}), 20); }
		send() {} close() {}
	};
	window.WebSocket.OPEN = 1;
	state.socket.close();
	return true;
})()`

const unblockLive = `(window.WebSocket = window.RealWebSocket, true)`

// TestDashboardResumeAndResync cuts the page's connection while events
// arrive and checks that it resumes by sequence with every delta (no new
// snapshot), then that a page told to resync reloads its snapshot.
func TestDashboardResumeAndResync(t *testing.T) {
	ctx := browser(t)
	s := startServer(t, "")
	tl := seedTeam(t, s, "", 60)
	s.waitReady()
	if err := chromedp.Do(ctx, chromedp.Navigate(s.url+"/?period=last_7_days&tz=UTC")); err != nil {
		t.Fatal(err)
	}
	want := tl.figures()
	waitFigures(t, ctx, want)

	// A watcher of the same view shows when the server has framed the deltas.
	watcher := dialLive(t, s)
	watcher.WriteJSON(map[string]any{"type": "subscribe", "view": map[string]string{"period": "last_7_days", "tz": "UTC"}})
	readFrame(t, watcher)

	snapshots := eval[int](t, ctx, `state.snapshots`)
	eval[bool](t, ctx, blockLive)
	waitJS(t, ctx, "the page offline", `state.socket.readyState !== 1 && $("status").className.includes("down")`)
	for i, p := range []seller{sellers[2], sellers[5], sellers[7]} {
		postEvents(t, s, "", event(fmt.Sprintf("gap-%d", i), p.user, fmt.Sprintf("OPP-GAP-%d", i)))
		if f := readFrame(t, watcher); f.Type != "delta" {
			t.Fatalf("watcher frame = %s, want delta", f.Type)
		}
		f := want[p.id]
		want[p.id] = [2]int{f[0] + 1, f[1] + 1}
	}
	if eval[bool](t, ctx, `state.txs.some(t => t.record.startsWith("OPP-GAP"))`) {
		t.Fatal("the page got a delta while its connection was cut")
	}
	eval[bool](t, ctx, unblockLive)
	waitJS(t, ctx, "the missed deltas applied", `["OPP-GAP-0", "OPP-GAP-1", "OPP-GAP-2"].every(r => state.txs.some(t => t.record === r))`)
	waitFigures(t, ctx, want)
	if got := eval[int](t, ctx, `state.resumes`); got != 1 {
		t.Errorf("the page resumed %d times, want 1", got)
	}
	if got := eval[int](t, ctx, `state.snapshots`); got != snapshots {
		t.Errorf("the page loaded %d snapshots on resuming, want none", got-snapshots)
	}

	// A sequence the view never had gets a resync, and the page reloads
	// its snapshot, with what happened meanwhile.
	eval[bool](t, ctx, blockLive)
	eval[bool](t, ctx, `(state.seq += 1000000, true)`)
	postEvents(t, s, "", event("gap-3", "u-1", "OPP-GAP-3"))
	readFrame(t, watcher)
	f := want["ana"]
	want["ana"] = [2]int{f[0] + 1, f[1] + 1}
	eval[bool](t, ctx, unblockLive)
	waitJS(t, ctx, "a new snapshot", fmt.Sprintf(`state.snapshots === %d`, snapshots+1))
	waitFigures(t, ctx, want)
	waitJS(t, ctx, "the table reloaded", `state.txs.some(t => t.record === "OPP-GAP-3")`)
}
