package dashboard

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/skiff-paas/skiff/internal/client"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// Config configures the dashboard.
type Config struct {
	// Client returns a client of the API that acts with token. Required.
	Client func(token string) *client.Client
	// SessionTTL is how long a login lasts (default 12h).
	SessionTTL time.Duration
	// MaxSessions bounds the sessions kept at once (default 10000); past
	// it, a login ends the session closest to expiring.
	MaxSessions int
	// Now tells the time (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Dashboard is the web dashboard: an http.Handler of /dashboard/.
type Dashboard struct {
	cfg      Config
	log      *slog.Logger
	sessions *sessions
	// handler serves the pages, behind a check that refuses unsafe
	// requests a browser says came from another site, before any CSRF
	// token is looked at.
	handler http.Handler
}

//go:embed templates static
var assets embed.FS

// Prefix is where the dashboard is served.
const Prefix = "/dashboard/"

// New returns a dashboard.
func New(cfg Config) (*Dashboard, error) {
	if cfg.Client == nil {
		return nil, errors.New("dashboard: Client is required")
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 10_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Dashboard{cfg: cfg, log: cfg.Logger.With("part", "dashboard"),
		sessions: newSessions(cfg.SessionTTL, cfg.MaxSessions, cfg.Now)}
	crossOrigin := http.NewCrossOriginProtection()
	crossOrigin.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.fail(w, nil, http.StatusForbidden, "This form came from another site.", "Open the dashboard at its own address and try again.")
	}))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /dashboard/login", d.loginForm)
	mux.HandleFunc("POST /dashboard/login", d.login)
	mux.HandleFunc("POST /dashboard/logout", d.withSession(d.logout))
	mux.HandleFunc("GET /dashboard/{$}", d.withSession(d.appsPage))
	mux.HandleFunc("GET /dashboard/apps/{app}", d.withSession(d.appPage))
	mux.HandleFunc("GET /dashboard/apps/{app}/ps", d.withSession(d.psFragment))
	mux.HandleFunc("GET /dashboard/apps/{app}/logs", d.withSession(d.logStream))
	for name, act := range appActions {
		mux.HandleFunc("POST /dashboard/apps/{app}/"+name, d.withSession(d.appAction(act)))
	}
	mux.HandleFunc("GET /dashboard/nodes", d.withSession(d.nodesPage))
	mux.HandleFunc("GET /dashboard/events", d.withSession(d.eventsPage))
	static, _ := fs.Sub(assets, "static")
	files := http.StripPrefix("/dashboard/static/", http.FileServerFS(static))
	mux.HandleFunc("GET /dashboard/static/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
	mux.HandleFunc("/dashboard/", func(w http.ResponseWriter, r *http.Request) {
		d.fail(w, nil, http.StatusNotFound, "There is no such page.", "The apps list is at "+Prefix+".")
	})
	d.handler = crossOrigin.Handler(mux)
	return d, nil
}

// ServeHTTP serves the dashboard's pages, with headers that keep them
// from being framed, sniffed, cached or given scripts from elsewhere.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	d.handler.ServeHTTP(w, r)
}

// WantsPage reports whether a request for / comes from a browser, which
// the API then sends to the dashboard.
func WantsPage(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// request is what a page handler of a logged-in user has.
type request struct {
	*http.Request
	session session
	client  *client.Client
}

// withSession runs h for a logged-in user, and sends others to the login
// form (or, for what a script fetches, answers 401).
func (d *Dashboard) withSession(h func(http.ResponseWriter, *request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, ok := d.sessions.fromRequest(r)
		if !ok {
			if r.Method == http.MethodGet && !isFetch(r) {
				http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
				return
			}
			http.Error(w, "your dashboard session ended: log in again", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			// Room for a config value of 32 KiB, URL-encoded.
			r.Body = http.MaxBytesReader(w, r.Body, 256<<10)
			if err := r.ParseForm(); err != nil {
				d.fail(w, &sess, http.StatusBadRequest, "The form could not be read.", "Reload the page and try again.")
				return
			}
			if !validCSRF(sess.CSRF, r.PostFormValue(csrfField)) {
				d.fail(w, &sess, http.StatusForbidden, "This form has expired.", "Reload the page and try again.")
				return
			}
		}
		h(w, &request{Request: r, session: sess, client: d.cfg.Client(sess.Token)})
	}
}

// isFetch reports whether a request is a script's rather than a page's.
func isFetch(r *http.Request) bool {
	return r.Header.Get("Sec-Fetch-Dest") == "empty" || strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// page is what every page's template gets.
type page struct {
	Title   string
	Nav     string // the menu entry to mark as current
	User    string
	Admin   bool
	CSRF    string
	Flash   *flash
	Content any
}

// pages are the templates of the pages, each with the layout.
var pages = map[string]*template.Template{}

func init() {
	for _, name := range []string{"login", "apps", "app", "nodes", "events", "error"} {
		pages[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(assets,
			"templates/layout.html", "templates/parts.html", "templates/"+name+".html"))
	}
	pages["ps"] = template.Must(template.New("ps").Funcs(funcs).ParseFS(assets, "templates/parts.html"))
}

// render writes a page; sess is nil on the pages of no session.
func (d *Dashboard) render(w http.ResponseWriter, status int, name string, sess *session, p page) {
	if sess != nil {
		p.User, p.Admin, p.CSRF, p.Flash = sess.User, sess.Admin, sess.CSRF, sess.Flash
	}
	var buf bytes.Buffer
	if err := pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		d.log.Error("render page", "page", name, "err", err)
		http.Error(w, "the dashboard could not draw this page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail shows an error page.
func (d *Dashboard) fail(w http.ResponseWriter, sess *session, status int, message, hint string) {
	d.render(w, status, "error", sess, page{Title: "Error", Content: flash{Error: true, Message: message, Hint: hint}})
}

// failAPI shows what the API answered to a page's main request: a token
// that stopped working ends the session.
func (d *Dashboard) failAPI(w http.ResponseWriter, r *request, err error) {
	if skiff.KindOf(err) == skiff.KindUnauthorized {
		d.sessions.delete(r.session.ID)
		setCookie(w, r.Request, sessionCookie, "", -1)
		http.Redirect(w, r.Request, Prefix+"login?ended=1", http.StatusSeeOther)
		return
	}
	status, body := skiff.ErrorBody(err)
	d.fail(w, &r.session, status, sentence(body.Error), sentence(body.Hint))
}

// sentence makes an API message (lowercase, no full stop) read as a
// sentence on a page.
func sentence(s string) string {
	if s == "" {
		return ""
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
