package cron

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiff-paas/skiff/internal/oneoff"
	"github.com/skiff-paas/skiff/internal/schedule"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// LeaseName is the lease in the locks bucket that the acting runner holds.
const LeaseName = "cron"

// Config configures a runner.
type Config struct {
	// Node names this runner as the lease's holder and in its claims.
	Node string
	// Window is how long after its slot begins a job may still start
	// (default 30 s): a runner that takes over later skips the slot.
	Window time.Duration
	// Tick is how often the leading runner looks for due slots (default
	// 1 s).
	Tick time.Duration
	// ClaimTTL is how long the claim of a slot is kept (default 1 h); it
	// must outlast Window by far.
	ClaimTTL time.Duration
	// Minute is how long a minute of the schedules lasts (default one
	// minute). Only tests shorten it, to see jobs run without waiting
	// for real minutes.
	Minute time.Duration
	// Now tells the time (default time.Now); tests control it.
	Now    func() time.Time
	Logger *slog.Logger
}

// Runner is the cron runner of one node.
type Runner struct {
	cfg   Config
	st    *store.Store
	log   *slog.Logger
	ready atomic.Bool
	runs  sync.WaitGroup // starts under way
}

// New validates cfg and returns a runner.
func New(cfg Config, st *store.Store) (*Runner, error) {
	if cfg.Node == "" {
		return nil, errors.New("cron: Node is required")
	}
	if cfg.Window <= 0 {
		cfg.Window = 30 * time.Second
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.ClaimTTL <= 0 {
		cfg.ClaimTTL = time.Hour
	}
	if cfg.ClaimTTL < 2*cfg.Window {
		return nil, fmt.Errorf("cron: ClaimTTL %s must be at least twice Window %s", cfg.ClaimTTL, cfg.Window)
	}
	if cfg.Minute == 0 {
		cfg.Minute = time.Minute
	}
	if cfg.Minute < 100*time.Millisecond || cfg.Minute > time.Minute {
		return nil, fmt.Errorf("cron: a minute of %s is out of range (100ms to 1m)", cfg.Minute)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: cfg, st: st, log: cfg.Logger.With("role", "cron")}, nil
}

// Ready reports whether the runner is either leading with a complete view
// of the schedules, or standing by behind another leader.
func (r *Runner) Ready() bool { return r.ready.Load() }

// Run competes for the lease and runs jobs while holding it, until ctx
// ends; then it waits for the starts under way.
func (r *Runner) Run(ctx context.Context) error {
	defer r.runs.Wait()
	r.st.Lead(ctx, LeaseName, r.cfg.Node, &r.ready, r.log, r.lead)
	return nil
}

// job is a release's cron entry, parsed.
type job struct {
	skiff.CronJob
	index int
	id    string
	sched schedule.Schedule
}

// term is what the leader knows while it leads; only lead touches it.
type term struct {
	current map[string]int   // app -> current release (0: none)
	jobs    map[string][]job // release key -> its jobs, for releases that have some
	// tried holds the claims this term made or found made, by key, until
	// their slot is out of the window; unsure those whose create failed
	// in a way that may have stored it, to be tried again as they were.
	tried  map[string]skiff.CronRun
	unsure map[string]skiff.CronRun
}

// lead keeps the view of the schedules and runs what is due, until ctx
// ends or the lease is lost. The starts it begins outlive it: their slots
// are claimed.
func (r *Runner) lead(ctx context.Context, lease *store.Lease) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	apps, err := r.st.Apps.Watch(wctx, "")
	if err != nil {
		return err
	}
	rels, err := r.st.Releases.Watch(wctx, "")
	if err != nil {
		return err
	}
	t := &term{current: map[string]int{}, jobs: map[string][]job{}, tried: map[string]skiff.CronRun{}, unsure: map[string]skiff.CronRun{}}
	const watches = 2
	synced := 0
	renew := time.NewTicker(r.st.LockTTL() / 3)
	defer renew.Stop()
	tick := time.NewTicker(r.cfg.Tick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case c, ok := <-apps:
			switch {
			case !ok:
				return errors.New("the watch of apps ended")
			case c.Synced:
				if synced++; synced == watches {
					r.loaded(ctx, t)
				}
			case c.Deleted:
				delete(t.current, c.Key)
				if synced == watches {
					r.forget(ctx, c.Key)
				}
			default:
				t.current[c.Key] = c.Value.Current
			}
		case c, ok := <-rels:
			switch {
			case !ok:
				return errors.New("the watch of releases ended")
			case c.Synced:
				if synced++; synced == watches {
					r.loaded(ctx, t)
				}
			case c.Deleted || len(c.Value.Cron) == 0:
				delete(t.jobs, c.Key)
			default:
				t.jobs[c.Key] = r.parse(c.Value)
			}
		case <-renew.C:
			if err := lease.Renew(ctx); err != nil {
				if !lease.Held() {
					return err
				}
				r.log.Warn("lease not renewed; still held, trying again", "err", err)
			}
		case <-tick.C:
			if synced == watches {
				if err := r.round(ctx, lease, t); err != nil {
					return err
				}
			}
		}
	}
}

// loaded marks the runner ready once its view is complete, and forgets
// the last runs of apps destroyed while no runner led.
func (r *Runner) loaded(ctx context.Context, t *term) {
	r.ready.Store(true)
	n := 0
	for _, jobs := range t.jobs {
		n += len(jobs)
	}
	r.log.Info("schedules loaded", "apps", len(t.current), "jobs", n)
	lasts, err := r.st.Cron.List(ctx, "*.*.last")
	if err != nil {
		r.log.Warn("list last runs", "err", err)
		return
	}
	gone := map[string]bool{}
	for _, c := range lasts {
		if app, _, _ := strings.Cut(c.Key, "."); !gone[app] {
			if _, ok := t.current[app]; !ok {
				gone[app] = true
				r.forget(ctx, app)
			}
		}
	}
}

// forget deletes the records of a destroyed app's jobs; its claims
// expire by themselves.
func (r *Runner) forget(ctx context.Context, app string) {
	lasts, err := r.st.Cron.List(ctx, app+".*.last")
	if err != nil {
		r.log.Warn("list last runs", "app", app, "err", err)
		return
	}
	for _, c := range lasts {
		if err := r.st.Cron.Delete(ctx, c.Key); err != nil {
			r.log.Warn("forget last run", "app", app, "err", err)
		}
	}
}

// parse reads a release's jobs. The builder checked them; one that does
// not parse now is skipped, with a warning.
func (r *Runner) parse(rel skiff.Release) []job {
	var out []job
	for i, j := range rel.Cron {
		s, err := schedule.Parse(j.Schedule)
		if err != nil {
			r.log.Warn("skipping scheduled job", "app", rel.App, "release", rel.Version, "job", i+1, "err", err)
			continue
		}
		out = append(out, job{CronJob: j, index: i + 1, id: j.ID(), sched: s})
	}
	return out
}

// round claims and starts every job whose slot is due.
func (r *Runner) round(ctx context.Context, lease *store.Lease, t *term) error {
	now := r.cfg.Now()
	for _, m := range []map[string]skiff.CronRun{t.tried, t.unsure} {
		for key, run := range m {
			if now.Sub(run.Slot) > 2*r.cfg.Window {
				delete(m, key)
			}
		}
	}
	type due struct {
		key string
		run skiff.CronRun
	}
	var todo []due
	snow, swindow := r.toSchedule(now), r.scheduleSpan(r.cfg.Window)
	for app, version := range t.current {
		for _, j := range t.jobs[skiff.ReleaseKey(app, version)] {
			slot := j.sched.Due(snow, swindow)
			if slot.IsZero() {
				continue
			}
			key := skiff.CronClaimKey(app, j.id, slot.Unix())
			if _, done := t.tried[key]; done {
				continue
			}
			run, again := t.unsure[key]
			if !again {
				run = skiff.CronRun{App: app, Job: j.id, Index: j.index, Command: j.Command, Schedule: j.Schedule,
					Slot: r.fromSchedule(slot), Release: version, Runner: r.cfg.Node}
			}
			todo = append(todo, due{key, run})
		}
	}
	if len(todo) == 0 {
		return nil
	}
	// The fence: a runner that lost the lease fails here and starts
	// nothing; one that renewed holds the lease a full TTL from now.
	renewed := time.Now()
	if err := lease.Renew(ctx); err != nil {
		return err
	}
	for _, d := range todo {
		if time.Since(renewed) > r.st.LockTTL()/4 {
			renewed = time.Now()
			if err := lease.Renew(ctx); err != nil {
				return err
			}
		}
		run := d.run
		if _, again := t.unsure[d.key]; !again {
			run.Claimed, run.Fencing = now.UTC(), lease.Revision()
		}
		claimed, err := r.st.ClaimCronSlot(ctx, d.key, run, r.cfg.ClaimTTL)
		if err != nil {
			r.log.Warn("claim scheduled job", "app", run.App, "job", run.Index, "slot", run.Slot, "err", err)
			t.unsure[d.key] = run // try again next tick, within the window
			continue
		}
		_, again := t.unsure[d.key]
		delete(t.unsure, d.key)
		t.tried[d.key] = run
		if !claimed && !(again && r.ours(ctx, d.key, run)) {
			r.log.Debug("scheduled job ran already", "app", run.App, "job", run.Index, "slot", run.Slot)
			continue
		}
		r.runs.Add(1)
		go func() {
			defer r.runs.Done()
			r.start(ctx, run)
		}()
	}
	return nil
}

// ours reports whether the claim at key is the one this runner tried to
// make earlier without learning whether it was stored.
func (r *Runner) ours(ctx context.Context, key string, run skiff.CronRun) bool {
	got, _, err := r.st.Cron.Get(ctx, key)
	return err == nil && got.Runner == run.Runner && got.Claimed.Equal(run.Claimed) && got.Fencing == run.Fencing
}

// start starts a claimed job as a detached one-off, tells the app's logs
// and events, and records the job's last run.
func (r *Runner) start(ctx context.Context, run skiff.CronRun) {
	log := r.log.With("app", run.App, "job", run.Index, "slot", run.Slot)
	req := oneoff.Request{ID: secret.Token(12), App: run.App, Command: run.Command, Detach: true}
	_, started, err := oneoff.Start(ctx, r.st.NC, req, oneoff.Options{})
	ev := skiff.Event{App: run.App, Release: run.Release, Component: "cron"}
	if err != nil {
		if ctx.Err() != nil {
			err = errors.New("the server stopped before an agent answered")
		}
		run.Error = err.Error()
		ev.Type, ev.Message = skiff.EventCronFailed, fmt.Sprintf("Scheduled job %d did not start: %s: %v", run.Index, run.Command, err)
		log.Warn("scheduled job did not start", "err", err)
	} else {
		run.Name, run.Node = started.Name, started.Node
		ev.Type, ev.Instance = skiff.EventCronStarted, started.Name
		ev.Message = fmt.Sprintf("Scheduled job %d started: %s as %s", run.Index, run.Command, started.Name)
		log.Info("scheduled job started", "name", started.Name, "node", started.Node)
	}
	r.st.Emit(ev)
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err = r.st.Cron.Upsert(bg, skiff.CronLastKey(run.App, run.Job), func(last *skiff.CronRun) error {
		if last.Slot.After(run.Slot) {
			return store.ErrNoChange
		}
		*last = run
		return nil
	})
	if err != nil {
		log.Warn("record last run", "err", err)
	}
}

// toSchedule is the time of the schedules at real time t: the same,
// unless Minute shortens the schedules' minutes for a test.
func (r *Runner) toSchedule(t time.Time) time.Time {
	if r.cfg.Minute == time.Minute {
		return t.UTC()
	}
	return time.UnixMilli(t.UnixMilli() * time.Minute.Milliseconds() / r.cfg.Minute.Milliseconds()).UTC()
}

// fromSchedule is the real time of time t of the schedules.
func (r *Runner) fromSchedule(t time.Time) time.Time {
	if r.cfg.Minute == time.Minute {
		return t.UTC()
	}
	return time.UnixMilli(t.UnixMilli() * r.cfg.Minute.Milliseconds() / time.Minute.Milliseconds()).UTC()
}

// scheduleSpan is how long real duration d lasts in the schedules' time.
func (r *Runner) scheduleSpan(d time.Duration) time.Duration {
	if r.cfg.Minute == time.Minute {
		return d
	}
	return time.Duration(int64(d) / r.cfg.Minute.Milliseconds() * time.Minute.Milliseconds())
}
