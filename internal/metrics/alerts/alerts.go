// Package alerts is the part of the metrics role that raises alerts: it
// evaluates the alert rules (skiff.AlertRule) against the platform's
// state, keeps each alert's state in the alerts bucket, and tells of
// alerts that fire, repeat and resolve by emitting alert events, which
// package webhooks delivers to webhooks and emails like any event.
//
// One engine, the holder of the "alerts" lease, evaluates; the others
// wait to take over. Each tick it reads a snapshot (rules, apps,
// formations, nodes, instances, the recent events it follows, router
// numbers) and calls Evaluate, a pure function, which says what to write
// and whom to tell:
//
//	         condition holds                 held For (and not held back)
//	(none) ───────────────────► pending ───────────────────────────► firing ──► notify
//	   ▲     condition ends        │                                  │  every Repeat: notify again
//	   └───────────────────────────┘                 condition ends   ▼
//	                                                               resolved ──► notify once
//
// Dependencies: when a node is declared dead, the scheduler names in its
// node.dead events the apps that had instances there. One node_down
// alert names them all, and those apps raise no app_down, error_rate or
// p99 alert of their own for Grace (the scheduler's boot timeout): by
// then their instances run elsewhere, or the app really is down and its
// own alert fires.
package alerts

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// LeaseName is the lease the evaluating engine holds.
const LeaseName = "alerts"

// lookback is how far back the engine reads events when it starts
// leading: a day of backups, and more.
const lookback = 25 * time.Hour

// Config configures an engine.
type Config struct {
	// Node names this engine as the lease's holder.
	Node string
	// Tick is how often the rules are evaluated (default 2 s).
	Tick time.Duration
	// Grace is how long the apps of a dead node wait for the scheduler
	// before they alert on their own (default 60 s: its boot timeout).
	Grace time.Duration
	// Repeat is how often a firing alert is told again (default 1 h).
	Repeat time.Duration
	// Keep is how long resolved alerts stay listed (default 24 h).
	Keep time.Duration
	// Series gives error rates and p99s (default: Samples, over the
	// routers' samples).
	Series Series
	Logger *slog.Logger
}

// Engine is the alert engine of one metrics node.
type Engine struct {
	cfg     Config
	st      *store.Store
	log     *slog.Logger
	ready   atomic.Bool
	samples *Samples // when Series is the default
}

// New validates cfg and returns an engine.
func New(cfg Config, st *store.Store) (*Engine, error) {
	if cfg.Node == "" || st == nil {
		return nil, errors.New("alerts: Node and a store are required")
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 2 * time.Second
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 60 * time.Second
	}
	if cfg.Repeat <= 0 {
		cfg.Repeat = skiff.DefaultRepeatInterval
	}
	if cfg.Keep <= 0 {
		cfg.Keep = 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{cfg: cfg, st: st, log: cfg.Logger.With("role", "alerts")}
	if cfg.Series == nil {
		e.samples = NewSamples(time.Duration(skiff.MaxMetricWindow))
		e.cfg.Series = e.samples
	}
	return e, nil
}

// Ready reports whether the engine leads with its state loaded, or
// stands by behind another.
func (e *Engine) Ready() bool { return e.ready.Load() }

// Run competes for the lease and evaluates while it holds it, until ctx
// ends.
func (e *Engine) Run(ctx context.Context) error {
	if e.samples != nil {
		// Every engine keeps the samples, so that one taking over has
		// its windows full.
		go func() {
			if err := e.samples.Follow(ctx, e.st); err != nil && ctx.Err() == nil {
				e.log.Warn("follow router samples", "err", err)
			}
		}()
	}
	e.st.Lead(ctx, LeaseName, e.cfg.Node, &e.ready, e.log, e.lead)
	return nil
}

// watched are the event types rules read.
func watched(typ string) bool {
	switch typ {
	case skiff.EventNodeDead, skiff.EventBackupFailed, skiff.EventBackupVerifyFail, skiff.EventBackupCaptured, skiff.EventBackupVerified:
		return true
	}
	return false
}

// lead evaluates every tick while the lease holds. The lease is renewed
// on its own clock, also while nothing changes; losing it ends ctx.
func (e *Engine) lead(ctx context.Context, lease *store.Lease) error {
	ctx, stop := lease.Hold(ctx)
	defer stop()
	// The history first, so that no rule is judged without it (an app of
	// a node that died just before would alert on its own); then the
	// events from the start of that read on, some of them twice, which
	// the rules do not mind.
	start := time.Now()
	var recent []skiff.Event
	err := e.st.ReadEvents(ctx, store.EventQuery{Since: start.Add(-lookback)}, func(ev skiff.Event) error {
		if watched(ev.Type) {
			recent = append(recent, ev)
		}
		return nil
	})
	if err != nil {
		return err
	}
	events := make(chan skiff.Event, 256)
	followed := make(chan error, 1)
	go func() {
		followed <- e.st.ReadEvents(ctx, store.EventQuery{Since: start, Follow: true}, func(ev skiff.Event) error {
			if watched(ev.Type) {
				select {
				case events <- ev:
				case <-ctx.Done():
				}
			}
			return nil
		})
	}()
	alerts := map[string]skiff.Alert{}
	list, err := e.st.Alerts.List(ctx, "")
	if err != nil {
		return err
	}
	for _, c := range list {
		alerts[c.Key] = c.Value
	}
	e.ready.Store(true)
	t := time.NewTicker(e.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case err := <-followed:
			return err
		case ev := <-events:
			recent = append(recent, ev)
			continue
		case <-t.C:
		}
		now := time.Now()
		recent = trim(recent, now.Add(-lookback))
		snap, err := e.snapshot(ctx, now, recent, alerts)
		if err != nil {
			e.log.Warn("read state for alerts", "err", err)
			continue
		}
		out := Evaluate(snap)
		if len(out.Put)+len(out.Delete) == 0 {
			continue
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		// Told first, then written: a leader that dies between the two
		// has the next one tell again rather than not at all.
		for _, ev := range out.Notify {
			e.log.Info("alert", "state", ev.Alert.State, "kind", ev.Alert.Kind, "app", ev.App, "node", ev.Node, "message", ev.Message)
			e.st.Emit(ev)
		}
		for _, a := range out.Put {
			if _, err := e.st.Alerts.Put(ctx, a.Key(), a); err != nil {
				e.log.Warn("write alert", "alert", a.Key(), "err", err)
				continue
			}
			alerts[a.Key()] = a
		}
		for _, key := range out.Delete {
			if err := e.st.Alerts.Delete(ctx, key); err != nil {
				e.log.Warn("delete alert", "alert", key, "err", err)
				continue
			}
			delete(alerts, key)
		}
	}
}

// trim drops the events before cut.
func trim(evs []skiff.Event, cut time.Time) []skiff.Event {
	i := 0
	for i < len(evs) && evs[i].Time.Before(cut) {
		i++
	}
	return evs[i:]
}

// snapshot reads what Evaluate needs. Without rules, it reads no more.
func (e *Engine) snapshot(ctx context.Context, now time.Time, recent []skiff.Event, alerts map[string]skiff.Alert) (Snapshot, error) {
	s := Snapshot{Now: now, Events: recent, Series: e.cfg.Series, Alerts: alerts, Grace: e.cfg.Grace,
		Repeat: e.cfg.Repeat, Keep: e.cfg.Keep, Apps: map[string]skiff.App{}, Formations: map[string]skiff.Formation{}}
	var err error
	if s.Rules, err = e.st.AlertRules.Values(ctx, ""); err != nil || len(s.Rules) == 0 {
		return s, err
	}
	apps, err := e.st.Apps.Values(ctx, "")
	if err != nil {
		return s, err
	}
	for _, a := range apps {
		s.Apps[a.Name] = a
	}
	forms, err := e.st.Formations.Values(ctx, "")
	if err != nil {
		return s, err
	}
	for _, f := range forms {
		s.Formations[f.App] = f
	}
	if s.Nodes, err = e.st.Nodes.Values(ctx, ""); err != nil {
		return s, err
	}
	s.Instances, err = e.st.Instances.Values(ctx, "")
	return s, err
}
