package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

const wallAdminToken = "e2e-admin-token"

// display is the answer of POST /v1/display-tokens.
type display struct {
	ID    string `json:"id"`
	Token string `json:"token"`
	URL   string `json:"url"`
	View  string `json:"view"`
}

func createDisplay(t *testing.T, s *server, view string) display {
	t.Helper()
	var d display
	body := mustJSON(t, map[string]string{"name": "sales floor", "view": view})
	if code := s.do("POST", "/v1/display-tokens", wallAdminToken, body, &d); code != http.StatusCreated {
		t.Fatalf("POST /v1/display-tokens: %d", code)
	}
	return d
}

// restartSamePort stops the server and starts it again on the same data
// directory and address, as an operator's restart would.
func (s *server) restartSamePort() {
	s.t.Helper()
	u, _ := url.Parse(s.url)
	s.stop()
	s.args = append(s.args, "--addr", u.Host)
	s.start()
}

// TestDisplayTokenScope checks what a display token may read: its own
// view and the window before it, nothing else, and nothing once revoked.
func TestDisplayTokenScope(t *testing.T) {
	s := startServer(t, "", "CRMPULSE_ADMIN_TOKEN="+wallAdminToken)
	d := createDisplay(t, s, "wall=1&period=today&team=Central&tz=UTC")
	if !strings.HasPrefix(d.URL, "/?") || !strings.Contains(d.URL, "token="+d.Token) {
		t.Fatalf("display url = %q", d.URL)
	}
	tests := []struct {
		path string
		want int
	}{
		{"/v1/report?period=today&team=Central&tz=UTC", http.StatusOK},
		{"/v1/transactions?period=today&team=Central&tz=UTC&limit=20", http.StatusOK},
		{"/v1/targets", http.StatusOK},
		{"/v1/report?period=today&team=East&tz=UTC", http.StatusUnauthorized},
		{"/v1/report?period=year_to_date&team=Central&tz=UTC", http.StatusUnauthorized},
		{"/v1/report?period=custom&from=2017-01-01T00:00:00Z&to=2018-01-01T00:00:00Z&team=Central&tz=UTC", http.StatusUnauthorized},
		{"/v1/users", http.StatusUnauthorized},
		{"/v1/display-tokens", http.StatusUnauthorized},
		{"/v1/display", http.StatusOK},
	}
	for _, tc := range tests {
		if got := s.do("GET", tc.path, d.Token, nil, nil); got != tc.want {
			t.Errorf("GET %s with the display token: %d, want %d", tc.path, got, tc.want)
		}
	}
	if code := s.do("POST", "/v1/events", d.Token, mustJSON(t, []any{event("x", "u-1", "R")}), nil); code != http.StatusUnauthorized {
		t.Errorf("POST /v1/events with the display token: %d, want 401", code)
	}

	if code := s.do("DELETE", "/v1/display-tokens/"+d.ID, wallAdminToken, nil, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE /v1/display-tokens/%s: %d", d.ID, code)
	}
	if got := s.do("GET", tests[0].path, d.Token, nil, nil); got != http.StatusUnauthorized {
		t.Errorf("a revoked display token read its view: %d, want 401", got)
	}
	if got := s.do("GET", "/v1/display", d.Token, nil, nil); got != http.StatusGone {
		t.Errorf("GET /v1/display with a revoked token: %d, want 410", got)
	}
}

// TestWallSurvivesRestartAndRevocation opens a wall display with a display
// token, restarts the server under it, checks that it shows data posted
// after the restart without anyone touching it, then revokes the token
// and checks that the wall turns into a notice.
func TestWallSurvivesRestartAndRevocation(t *testing.T) {
	ctx := browser(t)
	s := startServer(t, "", "CRMPULSE_ADMIN_TOKEN="+wallAdminToken)
	tl := seedTeam(t, s, wallAdminToken, 240)
	s.waitReady()
	d := createDisplay(t, s, "wall=1&period=last_7_days&tz=UTC")
	dialogs := countDialogs(t, ctx)

	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1600, 900), chromedp.Navigate(s.url+d.URL)); err != nil {
		t.Fatal(err)
	}
	want := tl.figures()
	waitFigures(t, ctx, want)
	waitJS(t, ctx, "the token out of the address bar", `!location.search.includes("token")`)
	waitJS(t, ctx, "wall mode", `document.body.classList.contains("wall") && getComputedStyle($("controls")).display === "none"`)
	waitJS(t, ctx, "the comparison with the previous period", `state.prev !== null && !!state.bars && !state.bars.animating`)
	screenshot(t, ctx, "wall.png")
	eval[bool](t, ctx, `window.notReloaded = true`)

	s.restartSamePort()
	postEvents(t, s, wallAdminToken, event("after-restart", "u-3", "OPP-AFTER-RESTART"))
	waitJS(t, ctx, "the event posted after the restart",
		`state.txs.some(t => t.record === "OPP-AFTER-RESTART") && $("status").className.includes("live")`)
	f := want["chloe"]
	want["chloe"] = [2]int{f[0] + 1, f[1] + 1}
	waitFigures(t, ctx, want)
	if !eval[bool](t, ctx, `window.notReloaded === true`) {
		t.Error("the wall reloaded itself although the server's build did not change")
	}

	if code := s.do("DELETE", "/v1/display-tokens/"+d.ID, wallAdminToken, nil, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE /v1/display-tokens/%s: %d", d.ID, code)
	}
	waitJS(t, ctx, "the revoked notice", `!$("notice").hidden && $("notice").textContent === "this display was revoked" && $("main").hidden`)
	if n := dialogs.Load(); n != 0 {
		t.Errorf("the wall opened %d JavaScript dialogs", n)
	}
}
