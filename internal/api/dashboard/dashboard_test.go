package dashboard_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/api"
	"github.com/skiff-paas/skiff/internal/api/apitest"
	"github.com/skiff-paas/skiff/internal/client"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// browser is a cookie-keeping HTTP client that, like a test would want,
// does not follow redirects.
type browser struct {
	t    *testing.T
	base string
	http *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, http: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.base+path, nil)
	req.Header.Set("Accept", "text/html")
	return b.do(req)
}

func (b *browser) post(path string, form url.Values, header ...string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the CSRF token of the forms of a page.
func (b *browser) csrf(page string) string {
	b.t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}

// login logs in with token and checks it worked.
func (b *browser) login(token string) {
	b.t.Helper()
	_, page := b.get("/dashboard/login")
	resp, body := b.post("/dashboard/login", url.Values{"csrf": {b.csrf(page)}, "token": {token}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard/" {
		b.t.Fatalf("login: %s %s\n%s", resp.Status, resp.Header.Get("Location"), body)
	}
}

func expect(t *testing.T, resp *http.Response, body string, status int, wants ...string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: %s, want %d\n%s", resp.Request.Method, resp.Request.URL.Path, resp.Status, status, body)
	}
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Fatalf("%s %s lacks %q:\n%s", resp.Request.Method, resp.Request.URL.Path, w, body)
		}
	}
}

func TestRootSendsBrowsersToTheDashboard(t *testing.T) {
	srv := apitest.Start(t, api.Config{Domain: "apps.test"})
	b := newBrowser(t, srv.URL)
	resp, _ := b.get("/")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard/" {
		t.Fatalf("GET / for a browser: %s %s", resp.Status, resp.Header.Get("Location"))
	}
	// Programs keep the JSON 404 of the API.
	for _, c := range []struct{ method, path, accept string }{
		{"GET", "/", "application/json"}, {"POST", "/", "text/html"}, {"GET", "/v1/nope", "text/html"},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		req.Header.Set("Accept", c.accept)
		resp, body := b.do(req)
		expect(t, resp, body, http.StatusNotFound, `"code": "not_found"`, "no such route: "+c.method+" "+c.path)
	}
	// The dashboard's own unknown pages are pages.
	resp, body := b.get("/dashboard/nope")
	expect(t, resp, body, http.StatusNotFound, "There is no such page.")
}

func TestLoginSessionAndActions(t *testing.T) {
	srv := apitest.Start(t, api.Config{Domain: "apps.test"})
	ctx := context.Background()
	admin := client.New(srv.URL, srv.Token)
	if _, err := admin.CreateApp(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"SECRET": "s3cret-value", "OLD": "x"}
	if _, err := admin.ChangeConfig(ctx, "shop", skiff.ConfigChange{Set: vars}); err != nil {
		t.Fatal(err)
	}
	sealed, _ := srv.Store.SealConfig(vars)
	if _, err := srv.Store.CreateRelease(ctx, skiff.Release{App: "shop", Description: "Deploy abc", ConfigSealed: sealed,
		Processes: map[string]string{"web": "python server.py"}}); err != nil {
		t.Fatal(err)
	}
	scoped, err := admin.CreateToken(ctx, skiff.ScopeBackupsRead)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, srv.URL)

	// Not logged in: pages send to the login form, scripts get 401.
	resp, _ := b.get("/dashboard/apps/shop")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard/login" {
		t.Fatalf("page without a session: %s %s", resp.Status, resp.Header.Get("Location"))
	}
	req, _ := http.NewRequest("GET", srv.URL+"/dashboard/apps/shop/logs", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, body := b.do(req)
	expect(t, resp, body, http.StatusUnauthorized)

	// The login form is guarded by a token of its own, then checks the
	// API token with the API.
	resp, page := b.get("/dashboard/login")
	expect(t, resp, page, http.StatusOK, `<label for="token">API token</label>`)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("security headers: %v", resp.Header)
	}
	csrf := b.csrf(page)
	for _, c := range []struct {
		form   url.Values
		status int
		want   string
	}{
		{url.Values{"token": {srv.Token}}, http.StatusForbidden, "This form has expired."},
		{url.Values{"token": {srv.Token}, "csrf": {"forged"}}, http.StatusForbidden, "This form has expired."},
		{url.Values{"token": {""}, "csrf": {"current"}}, http.StatusBadRequest, "Paste an API token to log in."},
		{url.Values{"token": {"wrong"}, "csrf": {"current"}}, http.StatusUnauthorized, "Unknown API token."},
		{url.Values{"token": {scoped.Token}, "csrf": {"current"}}, http.StatusForbidden, "A backups:read token may not log in to the dashboard."},
	} {
		if c.form.Get("csrf") == "current" {
			c.form.Set("csrf", csrf) // each form has a token of its own
		}
		resp, body := b.post("/dashboard/login", c.form)
		expect(t, resp, body, c.status, c.want)
		if strings.Contains(body, srv.Token) || strings.Contains(body, scoped.Token) {
			t.Fatal("the login page shows a token")
		}
		csrf = b.csrf(body)
	}
	resp, body = b.post("/dashboard/login", url.Values{"token": {srv.Token}, "csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %s\n%s", resp.Status, body)
	}
	var sessionID string
	for _, c := range resp.Cookies() {
		if c.Name == "skiff_session" {
			sessionID = c.Value
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.MaxAge <= 0 {
				t.Fatalf("session cookie: %s", resp.Header.Values("Set-Cookie"))
			}
		}
	}
	if sessionID == "" || strings.Contains(sessionID, srv.Token) {
		t.Fatalf("session cookie %q", sessionID)
	}

	// The apps list and the app page, which never show the token nor a
	// config value.
	resp, body = b.get("/dashboard/")
	expect(t, resp, body, http.StatusOK, `<a href="/dashboard/apps/shop">shop</a>`, "admin (admin)", `href="/dashboard/nodes"`)
	resp, page = b.get("/dashboard/apps/shop")
	expect(t, resp, page, http.StatusOK, "<h1 id=\"app-name\">shop</h1>", "Deploy abc", "<code>SECRET</code>", "+ OLD", "+ SECRET", "No data yet.")
	for _, secret := range []string{srv.Token, "s3cret-value"} {
		if strings.Contains(page, secret) {
			t.Fatalf("the app page shows %q", secret)
		}
	}
	csrf = b.csrf(page)
	resp, body = b.get("/dashboard/events")
	expect(t, resp, body, http.StatusOK, "Newest events", "app.created", "Release v1 created: Deploy abc", "No alert rules.")
	resp, body = b.get("/dashboard/apps/shop/ps")
	expect(t, resp, body, http.StatusOK, "No processes run.")
	resp, body = b.get("/dashboard/static/dashboard.css")
	expect(t, resp, body, http.StatusOK, ".chart")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Fatalf("stylesheet served as %q", ct)
	}

	// An action: config set, through the API, which makes release v2;
	// its diff names what changed.
	resp, body = b.post("/dashboard/apps/shop/config", url.Values{"csrf": {csrf}, "op": {"set"}, "key": {"GREETING"}, "value": {"hola"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard/apps/shop#config" {
		t.Fatalf("config set: %s %s\n%s", resp.Status, resp.Header.Get("Location"), body)
	}
	if cfg, _ := admin.Config(ctx, "shop"); cfg.Config["GREETING"] != "hola" {
		t.Fatalf("config after set: %v", cfg.Config)
	}
	resp, page = b.get("/dashboard/apps/shop")
	expect(t, resp, page, http.StatusOK, "Set GREETING: release v2 is starting.", "+ GREETING", "<code>GREETING</code>")
	if strings.Contains(page, "hola") {
		t.Fatal("the app page shows a config value")
	}
	diff, err := admin.ReleaseDiff(ctx, "shop", 2)
	if err != nil || strings.Join(diff.Added, ",") != "GREETING" || len(diff.Changed)+len(diff.Removed) != 0 || diff.From != 1 {
		t.Fatalf("diff of v2: %+v, %v", diff, err)
	}

	// The API's own checks stand: a bad quantity is the page's error,
	// scaling a type the app has not is the API's.
	for _, c := range []struct{ typ, quantity, want string }{
		{"web", "two", "Invalid quantity &#34;two&#34;."},
		{"nosuch", "1", "nosuch"},
	} {
		resp, body := b.post("/dashboard/apps/shop/scale", url.Values{"csrf": {csrf}, "type": {c.typ}, "quantity": {c.quantity}})
		expect(t, resp, body, http.StatusSeeOther)
		_, page := b.get("/dashboard/apps/shop")
		if !strings.Contains(page, `class="flash error"`) || !strings.Contains(page, c.want) {
			t.Fatalf("scale %s=%s: no error saying %q:\n%s", c.typ, c.quantity, c.want, page)
		}
	}

	// Without the session's CSRF token, or from another site, nothing
	// happens.
	for _, c := range []struct {
		form   url.Values
		header []string
	}{
		{url.Values{"op": {"set"}, "key": {"EVIL"}, "value": {"1"}}, nil},
		{url.Values{"csrf": {"forged"}, "op": {"set"}, "key": {"EVIL"}, "value": {"1"}}, nil},
		{url.Values{"csrf": {csrf}, "op": {"set"}, "key": {"EVIL"}, "value": {"1"}}, []string{"Sec-Fetch-Site", "cross-site"}},
		{url.Values{"csrf": {csrf}, "op": {"set"}, "key": {"EVIL"}, "value": {"1"}}, []string{"Origin", "https://evil.example"}},
	} {
		resp, body := b.post("/dashboard/apps/shop/config", c.form, c.header...)
		expect(t, resp, body, http.StatusForbidden)
	}
	if cfg, _ := admin.Config(ctx, "shop"); cfg.Config["EVIL"] != "" {
		t.Fatal("a forged form changed the config")
	}

	// Maintenance mode, through the API.
	resp, body = b.post("/dashboard/apps/shop/maintenance", url.Values{"csrf": {csrf}, "enabled": {"on"}})
	expect(t, resp, body, http.StatusSeeOther)
	if info, _ := admin.App(ctx, "shop"); !info.Maintenance {
		t.Fatal("maintenance mode did not turn on")
	}

	// The live log: server-sent events of the app's lines.
	streamCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ = http.NewRequestWithContext(streamCtx, "GET", srv.URL+"/dashboard/apps/shop/logs?source=app", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err = b.http.Do(req)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("log stream: %v %v", resp, err)
	}
	defer resp.Body.Close()
	srv.Store.Log("shop", skiff.SourceApp, "web.1", "hello from the stream")
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && !strings.Contains(sc.Text(), "hello from the stream") {
	}
	if !strings.HasPrefix(sc.Text(), "data: ") || !strings.Contains(sc.Text(), `"process":"web.1"`) {
		t.Fatalf("log stream: %q, %v", sc.Text(), sc.Err())
	}
	cancel()

	// Logging out ends the session on the server: its cookie is no use.
	_, page = b.get("/dashboard/")
	resp, body = b.post("/dashboard/logout", url.Values{"csrf": {b.csrf(page)}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard/login?out=1" {
		t.Fatalf("logout: %s %s", resp.Status, resp.Header.Get("Location"))
	}
	req, _ = http.NewRequest("GET", srv.URL+"/dashboard/", nil)
	req.AddCookie(&http.Cookie{Name: "skiff_session", Value: sessionID})
	resp, _ = b.do(req)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard/login" {
		t.Fatalf("old session after logout: %s %s", resp.Status, resp.Header.Get("Location"))
	}
}

// TestGraphsOfADay: a day of points (1440 at 1 min) comes from the
// metrics API, and the page draws them in lines of at most 240 points,
// staying well under 100 KB.
func TestGraphsOfADay(t *testing.T) {
	srv := apitest.Start(t, api.Config{Domain: "apps.test"})
	ctx := context.Background()
	now := time.Now().UTC()
	if _, err := srv.Store.Apps.Create(ctx, "busy", skiff.App{Name: "busy", Owner: "admin", CreatedAt: now.Add(-48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	res, _ := skiff.ResolutionNamed("1m")
	var points []skiff.MetricsPoint
	for i := range 1440 {
		p := skiff.MetricsPoint{App: "busy", Time: now.Add(-24 * time.Hour).Truncate(time.Minute).Add(time.Duration(i) * time.Minute)}
		p.Requests[1], p.Requests[3], p.Requests[4] = int64(600+i%60*10), 12, int64(i%7)
		p.Latency.Counts[4], p.Latency.Counts[7] = 500, int64(100+i%60*10+12+i%7)
		p.CPUSeconds = 6 + float64(i%30)/10
		p.Memory = skiff.Gauge{Avg: 80 << 20, Max: 96 << 20, Seconds: 60}
		points = append(points, p)
	}
	if err := srv.Store.WritePoints(ctx, res, points); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, srv.URL)
	b.login(srv.Token)
	resp, page := b.get("/dashboard/apps/busy?range=24h")
	expect(t, resp, page, http.StatusOK, `aria-current="true">24h</a>`, "Requests per second", "p99", "24h ago")
	if len(page) > 100_000 {
		t.Fatalf("the app page with a day of graphs is %d bytes", len(page))
	}
	paths := regexp.MustCompile(`<path class="series s\d" d="([^"]*)"`).FindAllStringSubmatch(page, -1)
	if len(paths) != 9 {
		t.Fatalf("%d lines drawn, want 9", len(paths))
	}
	for _, p := range paths {
		if n := strings.Count(p[1], "L") + 1; n < 200 || n > 241 {
			t.Fatalf("a line of %d points: %.200s", n, p[1])
		}
	}
	t.Logf("a day of graphs: %d bytes of HTML", len(page))
}

func TestUserSeesOnlyWhatTheAPILets(t *testing.T) {
	srv := apitest.Start(t, api.Config{Domain: "apps.test"})
	ctx := context.Background()
	admin := client.New(srv.URL, srv.Token)
	if _, err := admin.CreateApp(ctx, "theirs"); err != nil {
		t.Fatal(err)
	}
	bob, err := admin.CreateUser(ctx, "bob", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.New(srv.URL, bob.Token).CreateApp(ctx, "mine"); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, srv.URL)
	b.login(bob.Token)
	resp, body := b.get("/dashboard/")
	expect(t, resp, body, http.StatusOK, `href="/dashboard/apps/mine"`, "bob")
	if strings.Contains(body, "theirs") || strings.Contains(body, `href="/dashboard/nodes"`) {
		t.Fatalf("bob's apps page shows another's app or the admins' menu:\n%s", body)
	}
	resp, body = b.get("/dashboard/apps/theirs")
	expect(t, resp, body, http.StatusForbidden, "App theirs belongs to another user.")
	resp, body = b.get("/dashboard/nodes")
	expect(t, resp, body, http.StatusForbidden, "Only admins may do this.")
	_, page := b.get("/dashboard/apps/mine")
	resp, body = b.post("/dashboard/apps/theirs/maintenance", url.Values{"csrf": {b.csrf(page)}, "enabled": {"on"}})
	expect(t, resp, body, http.StatusSeeOther)
	if info, _ := admin.App(ctx, "theirs"); info.Maintenance {
		t.Fatal("bob turned on maintenance of another's app")
	}
}
