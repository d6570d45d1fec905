package e2e

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestPageSendsToSigninOn401 opens the page without a session where
// sign-in is required: the page's API calls answer 401 and it goes to
// /signin with the view as next; signing in brings the browser back to
// that view. Then, with the session cookie gone, a dropped websocket
// sends it to the sign-in page again.
func TestPageSendsToSigninOn401(t *testing.T) {
	ctx := browser(t)
	s := startServerWith(t, "", []string{"--config", signInConfig(t, rootPass, "")}, "CRMPULSE_ADMIN_TOKEN="+adminToken)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	const view = "/?period=last_7_days&tz=UTC"
	want := "/signin?next=" + url.QueryEscape(view)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.url+view)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the sign-in page", `location.pathname + location.search === `+jsString(want))
	err := chromedp.Do(ctx,
		chromedp.WaitVisible(`input[name=password]`),
		chromedp.SendKeys(`input[name=name]`, "root"),
		chromedp.SendKeys(`input[name=password]`, rootPass),
		chromedp.Submit(`input[name=password]`),
	)
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	waitJS(t, ctx, "the view after sign-in", `location.pathname + location.search === `+jsString(view)+
		` && typeof state === "object" && state.socket && state.socket.readyState === WebSocket.OPEN`)

	// The session ends (expired, or signed out elsewhere) and the live
	// connection drops: the page finds out through the websocket's path.
	cookie := network.DeleteCookiesParams{Name: "crmpulse_session", URL: s.url + "/"}
	if _, err := chromedp.Call(ctx, network.DeleteCookies, cookie); err != nil {
		t.Fatal(err)
	}
	eval[bool](t, ctx, `state.socket.close(), true`)
	waitJS(t, ctx, "the sign-in page after the websocket dropped",
		`location.pathname + location.search === `+jsString(want))
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
