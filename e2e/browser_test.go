package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser starts headless Chromium for a test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		requireCI(t, "chromium is not installed: apt-get install chromium")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first action starts the browser, which lives as long as ctx.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// screenshot saves the page to docs/screenshots when CRMPULSE_SCREENSHOTS
// is set, for the README.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("CRMPULSE_SCREENSHOTS") == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", "docs", "screenshots", name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPageShowsPeopleAndTransactions opens the page on the sample data set
// and checks that it lists the 35 people and the period's transactions.
func TestPageShowsPeopleAndTransactions(t *testing.T) {
	dir := sampleData(t)
	ctx := browser(t)
	s := startServer(t, "")
	loadSample(t, s, dir)
	s.waitReady()

	wait, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err := chromedp.Do(wait,
		chromedp.Navigate(s.url+"/?period=custom&from=2017-01-01&to=2018-01-01&tz=UTC"),
		chromedp.WaitVisible(`#people tbody tr:nth-child(35)`),
		chromedp.WaitVisible(`#transactions tbody tr`),
	)
	if err != nil {
		t.Fatalf("page: %v\n%s", err, s.logs)
	}
	people, _ := chromedp.Run(wait, chromedp.Evaluate[int](`document.querySelectorAll("#people tbody tr").length`))
	transactions, _ := chromedp.Run(wait, chromedp.Evaluate[int](`document.querySelectorAll("#transactions tbody tr").length`))
	first, _ := chromedp.Run(wait, chromedp.Text(`#transactions tbody tr:first-child td:nth-child(2)`))
	if people != 35 {
		t.Errorf("the page lists %d people, want 35", people)
	}
	if transactions != 100 {
		t.Errorf("the page shows %d transactions, want a first page of 100", transactions)
	}
	if first == "" {
		t.Errorf("the newest transaction names nobody")
	}
	screenshot(t, ctx, "dashboard.png")
}
