// Package addons is the addons role: it provisions the apps' PostgreSQL
// databases and Redis servers, rotates their credentials, and captures,
// restores and verifies their backups. docs/addons.md and docs/backups.md
// describe what users see.
//
// Jobs arrive as NATS requests on skiff.SubjectAddons, taken by one node
// of the role (a queue group), which answers at once and then publishes
// progress and the result, as builds do. A job holds the add-on's lease
// in the locks bucket while it runs, so two jobs never change one add-on
// at once, whichever nodes take them. The servers themselves are
// services (skiff.Service) that this role places on agent nodes and the
// nodes' service hosts run; the role talks to them as a client, with the
// superuser's password it keeps sealed in the service record.
//
// One node of the role leads (the "addons" lease) and does what is due
// by the clock: scheduled backups and their verification, retention,
// usage measures, and the promotion of a Redis replica whose primary's
// node died.
package addons

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/skiff-paas/skiff/internal/addons/backup"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// LeaseName is the lease the leading node of the role holds.
const LeaseName = "addons"

// Config configures the role.
type Config struct {
	// Node is this node's name. Required.
	Node string
	// WorkDir holds backups while they are captured, checked and
	// restored. Required.
	WorkDir string
	// PostgresURL, when set, is an admin URL of an existing PostgreSQL
	// server that holds the shared plan's databases; otherwise the
	// platform runs a shared server of its own on an agent node.
	PostgresURL string
	// Tools are the programs backups use (pg_dump, redis-server…).
	Tools backup.Tools
	// Retention is how many backups are kept (default backup.DefaultPolicy).
	Retention backup.Policy
	// ServiceTimeout bounds how long a job waits for a new server to come
	// up (default 2 minutes).
	ServiceTimeout time.Duration
	// Tick is how often the leader looks for work (default 15 s); tests
	// shorten it.
	Tick time.Duration
	// UsageEvery is how often each add-on's usage is measured (default a
	// minute).
	UsageEvery time.Duration
	// Concurrency bounds the jobs this node runs at once (default 4).
	Concurrency int
	Logger      *slog.Logger
}

// Manager is the addons role.
type Manager struct {
	cfg   Config
	st    *store.Store
	log   *slog.Logger
	ready atomic.Bool
	slots chan struct{}
}

// New validates cfg and returns the role.
func New(cfg Config, st *store.Store) (*Manager, error) {
	if cfg.Node == "" || cfg.WorkDir == "" {
		return nil, errors.New("addons: Node and WorkDir are required")
	}
	if cfg.Retention == (backup.Policy{}) {
		cfg.Retention = backup.DefaultPolicy
	}
	if cfg.ServiceTimeout <= 0 {
		cfg.ServiceTimeout = 2 * time.Minute
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 15 * time.Second
	}
	if cfg.UsageEvery <= 0 {
		cfg.UsageEvery = time.Minute
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// Traversable, not listable: the scratch servers that verify backups
	// run as their own user in directories below it; the backups in it
	// are files of mode 0600.
	if err := os.MkdirAll(cfg.WorkDir, 0o711); err != nil {
		return nil, fmt.Errorf("addons: %w", err)
	}
	if err := os.Chmod(cfg.WorkDir, 0o711); err != nil {
		return nil, fmt.Errorf("addons: %w", err)
	}
	if cfg.Tools.TempDir == "" {
		cfg.Tools.TempDir = cfg.WorkDir
	}
	return &Manager{cfg: cfg, st: st, log: cfg.Logger.With("role", skiff.RoleAddons),
		slots: make(chan struct{}, cfg.Concurrency)}, nil
}

// Ready reports whether the role takes jobs.
func (m *Manager) Ready() bool { return m.ready.Load() }

// Run takes jobs and, while it leads, does what is due, until ctx ends;
// then it waits for the jobs under way.
func (m *Manager) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	sub, err := m.st.NC.QueueSubscribe(skiff.SubjectAddons, skiff.QueueAddons, func(msg *nats.Msg) {
		var req skiff.AddonRequest
		if err := json.Unmarshal(msg.Data, &req); err != nil || req.ID == "" || req.App == "" || req.Op == "" {
			m.log.Warn("malformed add-on request", "err", err)
			return
		}
		reply, _ := json.Marshal(skiff.AddonAccepted{Node: m.cfg.Node})
		if err := msg.Respond(reply); err != nil {
			m.log.Warn("reply to add-on request", "err", err)
		}
		wg.Go(func() { m.serve(ctx, req) })
	})
	if err != nil {
		return fmt.Errorf("addons: subscribe: %w", err)
	}
	if err := m.st.NC.Flush(); err != nil {
		return fmt.Errorf("addons: subscribe: %w", err)
	}
	m.ready.Store(true)
	var leader atomic.Bool
	wg.Go(func() { m.st.Lead(ctx, LeaseName, m.cfg.Node, &leader, m.log, m.lead) })
	<-ctx.Done()
	m.ready.Store(false)
	if err := sub.Unsubscribe(); err != nil {
		m.log.Warn("unsubscribe", "err", err)
	}
	return nil
}

// job is one request being served: its progress goes to the requester.
type job struct {
	skiff.AddonRequest
	m   *Manager
	log *slog.Logger
}

// say publishes a line of progress.
func (j *job) say(format string, args ...any) {
	if j.ID == "" {
		j.log.Info(fmt.Sprintf(format, args...))
		return
	}
	if err := j.m.st.NC.Publish(skiff.AddonOutputSubject(j.ID), fmt.Appendf(nil, format, args...)); err != nil {
		j.log.Warn("progress dropped", "err", err)
	}
}

// serve runs one job and publishes its result.
func (m *Manager) serve(ctx context.Context, req skiff.AddonRequest) {
	j := &job{AddonRequest: req, m: m, log: m.log.With("app", req.App, "addon", req.Addon, "op", req.Op, "job", req.ID)}
	var res skiff.AddonResult
	var err error
	started := time.Now()
	defer func() { observeJob(req.Op, err, started) }() // metrics.go
	select {
	case m.slots <- struct{}{}:
		defer func() { <-m.slots }()
		res, err = m.do(ctx, j)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		if ctx.Err() != nil {
			err = skiff.Errorf(skiff.KindUnavailable, "try again once the server is back",
				"the node doing the job (%s) stopped", m.cfg.Node)
		}
		_, body := skiff.ErrorBody(err)
		res.Error, res.Code, res.Hint = body.Error, body.Code, body.Hint
		j.log.Warn("job failed", "err", err)
	}
	data, _ := json.Marshal(res)
	if err := m.st.NC.Publish(skiff.AddonDoneSubject(req.ID), data); err != nil {
		j.log.Warn("result dropped", "err", err)
	}
}

// do dispatches a job.
func (m *Manager) do(ctx context.Context, j *job) (skiff.AddonResult, error) {
	switch j.Op {
	case skiff.AddonOpCreate:
		a, err := m.create(ctx, j)
		return skiff.AddonResult{Addon: a}, err
	case skiff.AddonOpDestroy:
		a, err := m.destroy(ctx, j)
		return skiff.AddonResult{Addon: a}, err
	case skiff.AddonOpRotate:
		a, err := m.rotate(ctx, j)
		return skiff.AddonResult{Addon: a}, err
	case skiff.AddonOpCapture:
		b, err := m.capture(ctx, j)
		return skiff.AddonResult{Backup: b}, err
	case skiff.AddonOpRestore:
		b, err := m.restore(ctx, j)
		return skiff.AddonResult{Backup: b}, err
	case skiff.AddonOpVerify:
		b, err := m.verify(ctx, j)
		return skiff.AddonResult{Backup: b}, err
	}
	return skiff.AddonResult{}, skiff.Errorf(skiff.KindInvalid, "", "unknown add-on operation %q", j.Op)
}

// hold takes the add-on's lease for the length of a job and keeps it
// renewed; the returned func gives it back. A job that cannot renew it
// has its context cancelled: another job may then be changing the add-on.
func (m *Manager) hold(ctx context.Context, app, addon string) (context.Context, func(), error) {
	lease := m.st.Lease("addon."+app+"."+addon, m.cfg.Node+"/"+randomID(4))
	ok, err := lease.Acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, skiff.Errorf(skiff.KindConflict, "wait for it to end (skiff addons info shows the add-on's state), then try again",
			"another job is running on add-on %s of %s", addon, app)
	}
	ctx, stop := lease.Hold(ctx)
	return ctx, func() {
		stop()
		rctx, c := context.WithTimeout(context.Background(), 2*time.Second)
		lease.Release(rctx)
		c()
	}, nil
}

// addon reads app's add-on name.
func (m *Manager) addon(ctx context.Context, app, name string) (skiff.Addon, error) {
	a, _, err := m.st.Addons.Get(ctx, skiff.AddonKey(app, name))
	if errors.Is(err, skiff.ErrNotFound) {
		return a, skiff.Errorf(skiff.KindNotFound, "skiff addons -a "+app+" lists its add-ons", "app %s has no add-on %s", app, name)
	}
	return a, err
}

// setAddon changes the add-on's record.
func (m *Manager) setAddon(ctx context.Context, a *skiff.Addon, change func(*skiff.Addon)) error {
	v, _, err := m.st.Addons.Update(ctx, a.Key(), func(cur *skiff.Addon) error {
		change(cur)
		cur.UpdatedAt = time.Now().UTC()
		return nil
	})
	if err == nil {
		*a = v
	}
	return err
}

// randomID is n (at most 26) random lower-case letters and digits.
func randomID(n int) string { return strings.ToLower(rand.Text()[:n]) }

// password is a new random password, and the same sealed for the bus:
// 128 bits and more, letters and digits, safe in URLs and SQL literals as
// it is.
func (m *Manager) password() (string, []byte, error) {
	pw := rand.Text() + rand.Text()[:6]
	sealed, err := m.st.Seal([]byte(pw))
	return pw, sealed, err
}
