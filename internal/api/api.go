// Package api is the api role: the JSON HTTP API that the CLI, and anyone
// else, drives the platform through. docs/api.md describes the routes.
//
// Handlers validate what they are given, change state through the store and
// return. Long operations stream: a deploy stores the upload, hands it to a
// builder over the bus, streams the build's output, then follows the
// release until the scheduler says it is up or failed. Every error is a
// skiff.Error carried to the client as JSON with its message and hint; the
// mapping from kinds to status codes lives here and nowhere else.
package api

import (
	"github.com/skiff-paas/skiff/internal/deploy"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/skiff-paas/skiff/internal/archive"
	"github.com/skiff-paas/skiff/internal/oneoff"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// Config configures the API.
type Config struct {
	// Addr is the address to listen on.
	Addr string
	// Listener, when set, is used instead of listening on Addr.
	Listener net.Listener
	// Domain is the platform domain: apps answer at NAME.Domain. Required.
	Domain string
	// RouterPort is the router's port, shown in app URLs unless it is 80.
	RouterPort int
	// WorkDir holds uploads while they are checked. Required.
	WorkDir string
	// MaxUpload bounds a deploy's compressed upload (default 512 MiB).
	MaxUpload int64
	// Limits bound what an upload may unpack to.
	Limits archive.Limits
	// SSHAddr is the ssh role's address, for the apps' git URLs; empty
	// when no ssh role runs.
	SSHAddr string
	// BootTimeout is the scheduler's; a deploy waits this long, and a
	// little more, for its release to come up.
	BootTimeout time.Duration
	// Runs tunes the streams of one-off processes.
	Runs oneoff.Options
	// Health reports the readiness of every role for /healthz.
	Health func() map[string]bool
	Logger *slog.Logger
}

// API is the api role.
type API struct {
	cfg      Config
	st       *store.Store
	log      *slog.Logger
	listener net.Listener
	ready    atomic.Bool
	streams  sync.WaitGroup // deploys and log follows under way
	deployer *deploy.Deployer
}

// New validates cfg and opens the API's listener.
func New(cfg Config, st *store.Store) (*API, error) {
	if cfg.Domain == "" || cfg.WorkDir == "" {
		return nil, errors.New("api: Domain and WorkDir are required")
	}
	if cfg.Health == nil {
		cfg.Health = func() map[string]bool { return map[string]bool{skiff.RoleAPI: true} }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &API{cfg: cfg, st: st, log: cfg.Logger.With("role", "api"), listener: cfg.Listener}
	d, err := deploy.New(deploy.Config{WorkDir: cfg.WorkDir, MaxUpload: cfg.MaxUpload, Limits: cfg.Limits,
		BootTimeout: cfg.BootTimeout, URL: a.appURL, Logger: a.log}, st)
	if err != nil {
		return nil, err
	}
	a.deployer = d
	if a.listener == nil {
		l, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("api: listen on %s: %w", cfg.Addr, err)
		}
		a.listener = l
	}
	return a, nil
}

// Addr is the address the API listens on.
func (a *API) Addr() string { return a.listener.Addr().String() }

// Close releases the listener of an API that will not Run.
func (a *API) Close() error { return a.listener.Close() }

// Ready reports whether the API serves requests.
func (a *API) Ready() bool { return a.ready.Load() }

// Run serves until ctx ends.
func (a *API) Run(ctx context.Context) error {
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(a.listener) }()
	a.ready.Store(true)
	a.log.Info("serving", "addr", a.Addr())
	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("api: %w", err)
	}
	a.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	a.streams.Wait()
	return nil
}

// Handler is the API's routes.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	metrics := promhttp.Handler()
	mux.HandleFunc("GET /metrics", a.authenticated(admin(func(w http.ResponseWriter, r *http.Request, _ skiff.Token) {
		metrics.ServeHTTP(w, r)
	})))
	auth := func(pattern string, h func(http.ResponseWriter, *http.Request, skiff.Token)) {
		mux.HandleFunc(pattern, a.authenticated(h))
	}
	auth("GET /v1/whoami", a.whoami)
	auth("GET /v1/keys", a.listKeys)
	auth("POST /v1/keys", a.addKey)
	auth("DELETE /v1/keys/{key}", a.removeKey)
	auth("POST /v1/users", admin(a.createUser))
	auth("GET /v1/admin/export", admin(a.exportState))
	auth("GET /v1/admin/import", admin(a.checkImport))
	auth("POST /v1/admin/import", admin(a.importState))
	auth("GET /v1/apps", a.listApps)
	auth("POST /v1/apps", a.createApp)
	auth("GET /v1/apps/{app}", a.appInfo)
	auth("DELETE /v1/apps/{app}", a.destroyApp)
	auth("POST /v1/apps/{app}/deploys", a.deploy)
	auth("GET /v1/apps/{app}/config", a.getConfig)
	auth("PATCH /v1/apps/{app}/config", a.patchConfig)
	auth("GET /v1/apps/{app}/formation", a.getFormation)
	auth("PATCH /v1/apps/{app}/formation", a.scale)
	auth("GET /v1/apps/{app}/ps", a.ps)
	auth("POST /v1/apps/{app}/restart", a.restart)
	auth("GET /v1/apps/{app}/releases", a.listReleases)
	auth("GET /v1/apps/{app}/releases/{version}", a.getRelease)
	auth("GET /v1/apps/{app}/releases/{version}/diff", a.releaseDiff)
	auth("POST /v1/apps/{app}/rollback", a.rollback)
	auth("GET /v1/apps/{app}/logs", a.logs)
	auth("GET /v1/apps/{app}/metrics", a.appMetrics)
	auth("GET /v1/apps/{app}/events", a.appEvents)
	auth("GET /v1/events", admin(a.allEvents))
	auth("GET /v1/apps/{app}/webhooks", a.listWebhooks)
	auth("POST /v1/apps/{app}/webhooks", a.addWebhook)
	auth("DELETE /v1/apps/{app}/webhooks/{id}", a.removeWebhook)
	auth("GET /v1/webhooks", admin(a.listWebhooks))
	auth("POST /v1/webhooks", admin(a.addWebhook))
	auth("DELETE /v1/webhooks/{id}", admin(a.removeWebhook))
	auth("GET /v1/apps/{app}/alerts", a.listAlerts)
	auth("POST /v1/apps/{app}/alerts", a.addAlertRule)
	auth("DELETE /v1/apps/{app}/alerts/{id}", a.removeAlertRule)
	auth("GET /v1/alerts", admin(a.listAlerts))
	auth("POST /v1/alerts", admin(a.addAlertRule))
	auth("DELETE /v1/alerts/{id}", admin(a.removeAlertRule))
	auth("GET /v1/apps/{app}/logs/retention", a.getLogRetention)
	auth("PATCH /v1/apps/{app}/logs/retention", a.changeLogRetention)
	auth("GET /v1/apps/{app}/drains", a.listDrains)
	auth("POST /v1/apps/{app}/drains", a.addDrain)
	auth("DELETE /v1/apps/{app}/drains/{drain}", a.removeDrain)
	auth("POST /v1/apps/{app}/runs", a.run)
	auth("GET /v1/apps/{app}/cron", a.listCron)
	auth("PUT /v1/apps/{app}/maintenance", a.setMaintenance)
	auth("GET /v1/apps/{app}/router", a.getRouterSettings)
	auth("PATCH /v1/apps/{app}/router", a.changeRouterSettings)
	auth("GET /v1/apps/{app}/healthcheck", a.getHealthCheck)
	auth("PUT /v1/apps/{app}/healthcheck", a.setHealthCheck)
	auth("DELETE /v1/apps/{app}/healthcheck", a.unsetHealthCheck)
	auth("GET /v1/apps/{app}/domains", a.listDomains)
	auth("POST /v1/apps/{app}/domains", a.addDomain)
	auth("DELETE /v1/apps/{app}/domains/{hostname}", a.removeDomain)
	auth("GET /v1/apps/{app}/certs", a.listCerts)
	auth("POST /v1/apps/{app}/certs", a.addCert)
	auth("DELETE /v1/apps/{app}/certs/{hostname}", a.removeCert)
	auth("GET /v1/apps/{app}/placement", a.getPlacement)
	auth("PUT /v1/apps/{app}/placement", a.setPlacement)
	auth("GET /v1/apps/{app}/addons", a.listAddons)
	auth("POST /v1/apps/{app}/addons", a.jobRoute(skiff.AddonOpCreate, a.createAddon))
	auth("GET /v1/apps/{app}/addons/{addon}", a.getAddon)
	auth("DELETE /v1/apps/{app}/addons/{addon}", a.jobRoute(skiff.AddonOpDestroy, a.destroyAddon))
	auth("POST /v1/apps/{app}/addons/{addon}/credentials/rotate", a.jobRoute(skiff.AddonOpRotate, a.rotateCredentials))
	auth("PUT /v1/apps/{app}/addons/{addon}/backup-schedule", a.setBackupSchedule)
	auth("DELETE /v1/apps/{app}/addons/{addon}/backup-schedule", a.unsetBackupSchedule)
	auth("GET /v1/apps/{app}/addons/{addon}/tunnel", a.tunnel)
	auth("GET /v1/apps/{app}/backups", a.listBackups)
	auth("POST /v1/apps/{app}/backups", a.jobRoute(skiff.AddonOpCapture, a.captureBackup))
	auth("POST /v1/apps/{app}/backups/upload", a.uploadBackup)
	auth("GET /v1/apps/{app}/backups/{id}", a.getBackup)
	auth("GET /v1/apps/{app}/backups/{id}/download", a.downloadBackup)
	auth("POST /v1/apps/{app}/backups/{id}/restore", a.jobRoute(skiff.AddonOpRestore, a.restoreBackup))
	auth("POST /v1/apps/{app}/backups/{id}/verify", a.jobRoute(skiff.AddonOpVerify, a.verifyBackup))
	auth("GET /v1/backups", mayPullBackups(a.allBackups))
	auth("GET /v1/backups/{app}/{id}/download", mayPullBackups(a.pullBackup))
	auth("GET /v1/usage", a.usage)
	auth("POST /v1/tokens", admin(a.createToken))
	auth("GET /v1/nodes", admin(a.listNodes))
	auth("PUT /v1/nodes/{node}/drain", admin(a.drainNode(true)))
	auth("DELETE /v1/nodes/{node}/drain", admin(a.drainNode(false)))
	auth("DELETE /v1/nodes/{node}", admin(a.removeNode))
	a.mountDashboard(mux) // /dashboard/, and the JSON 404 of every other path (dashboard.go)
	return mux
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	roles := a.cfg.Health()
	status, code := "ok", http.StatusOK
	for _, ok := range roles {
		if !ok {
			status, code = "starting", http.StatusServiceUnavailable
		}
	}
	writeJSON(w, code, map[string]any{"status": status, "roles": roles})
}

func (a *API) whoami(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	writeJSON(w, http.StatusOK, skiff.WhoAmI{User: tok.User, Admin: tok.Admin, Scope: tok.Scope})
}

var (
	writeError = deploy.WriteError
	writeJSON  = deploy.WriteJSON
)

// readJSON decodes a small JSON body into v, refusing unknown fields.
func readJSON(r *http.Request, v any) error {
	return decodeJSON(io.LimitReader(r.Body, 1<<20), v)
}

// decodeJSON decodes a request body into v, refusing unknown fields.
func decodeJSON(rd io.Reader, v any) error {
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return skiff.Errorf(skiff.KindInvalid, "send a JSON body as docs/api.md describes", "malformed request body: %v", err)
	}
	return nil
}

// app loads the app named in the request path.
func (a *API) app(r *http.Request) (skiff.App, uint64, error) {
	name := r.PathValue("app")
	if err := skiff.ValidateAppName(name); err != nil {
		return skiff.App{}, 0, err
	}
	app, rev, err := a.st.Apps.Get(r.Context(), name)
	if errors.Is(err, skiff.ErrNotFound) {
		return app, 0, skiff.Errorf(skiff.KindNotFound, "skiff apps lists your apps; skiff apps create "+name+" makes it",
			"no app named %s", name)
	}
	if err == nil && !tokenOf(r).MayUse(app) {
		return skiff.App{}, 0, skiff.Errorf(skiff.KindForbidden, "ask its owner or an admin to act on it",
			"app %s belongs to another user", name)
	}
	return app, rev, err
}

// appURL is where the app answers through the router.
func (a *API) appURL(app string) string { return skiff.AppURL(app, a.cfg.Domain, a.cfg.RouterPort) }

// gitURL is where git push deploys app: the ssh role's port on the host
// the client reached the API at, unless the ssh role listens on a
// specific address.
func (a *API) gitURL(r *http.Request, app string) string {
	if a.cfg.SSHAddr == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(a.cfg.SSHAddr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
	}
	return "ssh://git@" + net.JoinHostPort(host, port) + "/" + app + ".git"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func joinSorted(keys []string) string { return strings.Join(keys, ", ") }
