package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestDashboard drives the web dashboard in headless Chromium as a user
// would: log in with the admin token, open an app that takes traffic,
// see its graphs drawn, scale it and see the processes come up, read a
// log line live as the app prints it, look at the nodes, log out. It
// saves a screenshot of each page in $SKIFF_ARTIFACTS (a temporary
// directory when unset).
func TestDashboard(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the dashboard test drives Debian's chromium (make deps installs it): %v", err)
	}
	artifacts := os.Getenv("SKIFF_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", artifacts)

	s := startServer(t, "--metrics-grace", "3s")
	s.ok("apps", "create", "dash")
	s.ok("deploy", app(t, "pyapp", nil), "-a", "dash")
	s.waitFor(host("dash"), "release=v1")
	token, err := os.ReadFile(filepath.Join(s.data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	stopLoad := s.load(2, host("dash"), "release=")
	loading := true
	defer func() {
		if loading {
			stopLoad()
		}
	}()
	start := time.Now()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Headless, chromedp.WindowSize(1280, 900), chromedp.Flag("disable-gpu", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	defer cancelTab()
	ctx, cancel := context.WithTimeout(ctx, 75*time.Second)
	defer cancel()

	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// submit submits the form of an element and waits for the page the
	// form leads to.
	submit := func(what, sel string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Submit(chromedp.CSS(sel)))); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return v
	}
	// waitFor polls a JavaScript condition in the page, reloading it
	// between tries when reload is set.
	waitFor := func(d time.Duration, what, cond string, reload bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for eval("String(!!("+cond+"))") != "true" {
			if time.Now().After(deadline) {
				t.Fatalf("waited %s for %s; the page says:\n%s", d, what, eval("document.body.innerText"))
			}
			if reload {
				do("reload", chromedp.Reload())
			} else {
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
	screenshot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(artifacts, "dashboard-"+name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		// The page as the server sent it, before any script added to it.
		t.Logf("%s page: %s", name, eval(`(n => n.decodedBodySize + " bytes of HTML, served in " +
			Math.round(n.responseEnd - n.requestStart) + " ms")(performance.getEntriesByType('navigation')[0])`))
	}

	// A browser that asks for / lands on the login form.
	do("open /", chromedp.Navigate("http://"+s.apiAddr+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasSuffix(loc, "/dashboard/login") {
		t.Fatalf("/ led to %s", loc)
	}
	screenshot("login")
	do("type the token", chromedp.SendKeys(chromedp.ID("token"), strings.TrimSpace(string(token))))
	submit("log in", "#token")
	waitFor(5*time.Second, "the apps list", `document.querySelector('a[href="/dashboard/apps/dash"]')`, false)
	screenshot("apps")

	// The app's page: its graphs fill in as the metrics role folds the
	// traffic into points.
	do("open the app", chromedp.Navigate("http://"+s.apiAddr+"/dashboard/apps/dash"), chromedp.WaitVisible(chromedp.ID("app-name")))
	waitFor(45*time.Second, "a graph with a line of points",
		`[...document.querySelectorAll('figure.chart path.series')].some(p => /L/.test(p.getAttribute('d')))`, true)
	t.Logf("graphs drawn %s after the traffic began", time.Since(start).Round(time.Second))
	stopLoad()
	loading = false

	// Scale web to 2: the processes section refreshes until both are up.
	do("set web=2", chromedp.SetValue(chromedp.ID("scale-web"), "2"))
	submit("scale", "#scale-web")
	waitFor(5*time.Second, "the flash of the scale", `document.querySelector('.flash') && document.querySelector('.flash').innerText.includes('Scaled web to 2.')`, false)
	waitFor(30*time.Second, "two web processes up",
		`[...document.querySelectorAll('#ps table.ps tbody tr')].filter(r => /^web\.\d/.test(r.cells[0].innerText) && r.innerText.includes('up')).length === 2`, false)

	// A line the app prints shows in the live log.
	waitFor(10*time.Second, "the log stream", `document.querySelector('.logstate').innerText === 'live'`, false)
	if code, _, err := s.get(host("dash"), "/log"); err != nil || code != 200 {
		t.Fatalf("GET /log: %d %v", code, err)
	}
	waitFor(15*time.Second, "the app's log line", `document.querySelector('ol.log').innerText.includes('hello from the log endpoint')`, false)
	screenshot("app")

	// On a phone-sized screen the page does not scroll sideways.
	do("narrow the window", chromedp.EmulateViewport(375, 812), chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("app-name")))
	if w := eval("String(document.documentElement.scrollWidth)"); w != "375" {
		t.Errorf("at 375 px the app page is %s px wide; too wide: %s", w, eval(`[...document.querySelectorAll('body *')]
			.filter(e => e.getBoundingClientRect().right > 376 && !e.closest('.scroll')).slice(0, 8)
			.map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).join(', ')`))
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err == nil {
		err = os.WriteFile(filepath.Join(artifacts, "dashboard-app-375px.png"), png, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	do("widen the window", chromedp.EmulateViewport(1280, 900))

	do("open the nodes", chromedp.Navigate("http://"+s.apiAddr+"/dashboard/nodes"), chromedp.WaitVisible(chromedp.CSS("table.nodes")))
	if text := eval(`document.querySelector('table.nodes').innerText`); !strings.Contains(text, "e2e") || !strings.Contains(text, "up") {
		t.Fatalf("nodes table: %s", text)
	}
	screenshot("nodes")

	// Logging out ends the session: the dashboard asks to log in again.
	submit("log out", "form.logout button")
	waitFor(5*time.Second, "the logged-out notice", `document.body.innerText.includes('You are logged out.')`, false)
	do("open the apps again", chromedp.Navigate("http://"+s.apiAddr+"/dashboard/"), chromedp.WaitVisible(chromedp.ID("token")))
	t.Logf("dashboard walk-through: %s", time.Since(start).Round(time.Second))
}
