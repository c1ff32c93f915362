// Package scheduler is the scheduler role: it turns releases and
// formations into assignments of instances to nodes, and decides when a
// rollout has succeeded or failed.
//
// The decisions are a pure function, Compute, from a snapshot of state to
// a Plan (plan.go). The loop here only keeps the snapshot, by watching the
// buckets it reads, calls Compute when something changed or time passed,
// and writes the plan back. Only the holder of the "scheduler" lease acts;
// other schedulers wait to take over.
//
//	acquire lease ──► watch apps, releases, formation, assignments,
//	                  instances, nodes ──► (all synced) ──► ready
//	change or tick ──► Compute(snapshot) ──► write plan ──► apply it to
//	                  the snapshot at once (the watch confirms it later)
//	renew fails ──► stop acting, go back to acquiring
package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// Config configures a scheduler.
type Config struct {
	// Node names this scheduler as a lease holder.
	Node string
	// BootTimeout bounds how long a release's instances may take to come
	// up before the release fails (default 60 s, as on Heroku).
	BootTimeout time.Duration
	// SuspectAfter is how long a node may be silent (no heartbeat) before
	// it takes no new instances (default 3 s); DeadAfter, before it is
	// declared dead and its instances are placed elsewhere (default 6 s).
	// Silence is measured on the leader's clock, from when it saw each
	// heartbeat arrive, so the nodes' clocks do not matter.
	SuspectAfter, DeadAfter time.Duration
	Logger                  *slog.Logger
}

// Scheduler is the scheduler role.
type Scheduler struct {
	cfg   Config
	st    *store.Store
	log   *slog.Logger
	ready atomic.Bool
}

// New validates cfg and returns a scheduler.
func New(cfg Config, st *store.Store) (*Scheduler, error) {
	if cfg.Node == "" {
		return nil, errors.New("scheduler: Node is required")
	}
	if cfg.BootTimeout <= 0 {
		cfg.BootTimeout = 60 * time.Second
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = 6 * time.Second
	}
	if cfg.SuspectAfter <= 0 || cfg.SuspectAfter > cfg.DeadAfter {
		cfg.SuspectAfter = min(3*time.Second, cfg.DeadAfter/2)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{cfg: cfg, st: st, log: cfg.Logger.With("role", "scheduler")}, nil
}

// Ready reports whether the scheduler is either leading with a complete
// view of the state, or standing by behind another leader.
func (s *Scheduler) Ready() bool { return s.ready.Load() }

// Run competes for the lease and schedules while holding it, until ctx
// ends.
func (s *Scheduler) Run(ctx context.Context) error {
	s.st.Lead(ctx, "scheduler", s.cfg.Node, &s.ready, s.log, s.lead)
	return nil
}

// update is one change from any of the watched buckets.
type update struct {
	bucket  string
	key     string
	rev     uint64
	deleted bool
	synced  bool
	value   any
}

// snapshot is the leader's view of state; only the lead loop touches it.
type snapshot struct {
	apps        map[string]Versioned[skiff.App]
	releases    map[string]Versioned[skiff.Release] // by key
	formations  map[string]skiff.Formation
	assignments map[string]skiff.Assignment // by key
	instances   map[string]skiff.Instance   // by key
	nodes       map[string]skiff.Node
	revs        map[string]uint64 // bucket/key -> last revision applied
	// heard is when the leader last saw each node's heartbeat arrive, on
	// its own clock; held says when it last waited rather than declare
	// many nodes dead at once.
	heard map[string]time.Time
	held  time.Time
	// lastAny is when the last heartbeat of any node arrived. A leader
	// that hears from nobody for blindAfter is blind (its bus, or its own
	// network, is down), not looking at a cluster of dead nodes: when
	// heartbeats come again, every node gets a full grace period anew.
	lastAny    time.Time
	blindAfter time.Duration
}

func watch[T any](ctx context.Context, wg *sync.WaitGroup, b *store.Bucket[T], out chan<- update) error {
	ch, err := b.Watch(ctx, "")
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for c := range ch {
			u := update{bucket: b.Name(), key: c.Key, rev: c.Revision, deleted: c.Deleted, synced: c.Synced, value: c.Value}
			select {
			case out <- u:
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}

func (s *Scheduler) lead(ctx context.Context, lease *store.Lease) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	updates := make(chan update, 1024)
	err := errors.Join(
		watch(ctx, &wg, s.st.Apps, updates),
		watch(ctx, &wg, s.st.Releases, updates),
		watch(ctx, &wg, s.st.Formations, updates),
		watch(ctx, &wg, s.st.Assignments, updates),
		watch(ctx, &wg, s.st.Instances, updates),
		watch(ctx, &wg, s.st.Nodes, updates),
	)
	if err != nil {
		return err
	}
	const buckets = 6
	snap := &snapshot{
		apps: map[string]Versioned[skiff.App]{}, releases: map[string]Versioned[skiff.Release]{},
		formations: map[string]skiff.Formation{}, assignments: map[string]skiff.Assignment{},
		instances: map[string]skiff.Instance{}, nodes: map[string]skiff.Node{}, revs: map[string]uint64{},
		heard: map[string]time.Time{}, blindAfter: s.cfg.SuspectAfter,
	}
	synced := 0
	renew := time.NewTicker(s.st.LockTTL() / 3)
	defer renew.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	// debounce gathers a burst of changes into one planning round.
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case u := <-updates:
			if u.synced {
				if synced++; synced == buckets {
					// A new leader knows nothing of when heartbeats
					// arrived before it led: it takes the nodes' own
					// times (their clocks may differ from its own),
					// giving each at least the time from suspect to
					// dead.
					now := time.Now()
					floor := now.Add(s.cfg.SuspectAfter - s.cfg.DeadAfter)
					for name, n := range snap.nodes {
						switch {
						case n.Heartbeat.Before(floor):
							snap.heard[name] = floor
						case n.Heartbeat.After(now):
							snap.heard[name] = now
						default:
							snap.heard[name] = n.Heartbeat
						}
					}
					snap.lastAny = now
					s.ready.Store(true)
					s.log.Info("state loaded", "apps", len(snap.apps), "assignments", len(snap.assignments))
					debounce.Reset(0)
				}
				continue
			}
			snap.apply(u)
			if synced == buckets && !pending {
				pending = true
				debounce.Reset(5 * time.Millisecond)
			}
		case <-renew.C:
			if err := lease.Renew(ctx); err != nil {
				if !lease.Held() {
					return err
				}
				s.log.Warn("lease not renewed; still held, trying again", "err", err)
			}
		case <-tick.C:
			if synced == buckets {
				s.round(ctx, snap, lease)
			}
		case <-debounce.C:
			pending = false
			s.round(ctx, snap, lease)
		}
	}
}

// apply records u in the snapshot unless a newer revision of the key is
// there already (the loop's own writes arrive early; their echo late).
func (snap *snapshot) apply(u update) {
	id := u.bucket + "/" + u.key
	if u.rev <= snap.revs[id] {
		return
	}
	snap.revs[id] = u.rev
	switch u.bucket {
	case skiff.BucketApps:
		store.Apply(snap.apps, u.key, u.deleted, Versioned[skiff.App]{Value: u.value.(skiff.App), Rev: u.rev})
	case skiff.BucketReleases:
		store.Apply(snap.releases, u.key, u.deleted, Versioned[skiff.Release]{Value: u.value.(skiff.Release), Rev: u.rev})
	case skiff.BucketFormation:
		store.Apply(snap.formations, u.key, u.deleted, u.value.(skiff.Formation))
	case skiff.BucketAssignments:
		store.Apply(snap.assignments, u.key, u.deleted, u.value.(skiff.Assignment))
	case skiff.BucketInstances:
		store.Apply(snap.instances, u.key, u.deleted, u.value.(skiff.Instance))
	case skiff.BucketNodes:
		old, had := snap.nodes[u.key]
		store.Apply(snap.nodes, u.key, u.deleted, u.value.(skiff.Node))
		if n := snap.nodes[u.key]; !u.deleted && (!had || !n.Heartbeat.Equal(old.Heartbeat) || n.Incarnation != old.Incarnation) {
			now := time.Now()
			if !snap.lastAny.IsZero() && now.Sub(snap.lastAny) > snap.blindAfter {
				for name := range snap.heard {
					snap.heard[name] = now
				}
			}
			snap.heard[u.key], snap.lastAny = now, now
		}
	}
}

// state builds the planner's input from the snapshot at now, which keeps
// its monotonic reading: the nodes' silences are measured with it.
func (s *Scheduler) state(snap *snapshot, now time.Time) *State {
	st := &State{
		Now: now.UTC(), BootTimeout: s.cfg.BootTimeout,
		Apps: snap.apps, Formations: map[string]skiff.Formation{},
		Releases:    map[string][]Versioned[skiff.Release]{},
		Assignments: map[string]skiff.Assignment{}, Instances: map[string]skiff.Instance{},
	}
	for app, f := range snap.formations {
		st.Formations[app] = f
	}
	for _, r := range snap.releases {
		st.Releases[r.Value.App] = append(st.Releases[r.Value.App], r)
	}
	for _, rels := range st.Releases {
		sort.Slice(rels, func(i, j int) bool { return rels[i].Value.Version < rels[j].Value.Version })
	}
	for _, a := range snap.assignments {
		st.Assignments[a.ID] = a
	}
	for _, i := range snap.instances {
		st.Instances[i.ID] = i
	}
	st.Nodes = s.judge(snap, now)
	return st
}

// judge says, for every node known from a record or an assignment, whether
// it is up, suspect or dead: dead once declared so, else by how long ago
// the leader saw its last heartbeat arrive. A node without a record (its
// agent stopped, or the record expired) is judged the same way, from the
// last heartbeat seen or the leader's start.
func (s *Scheduler) judge(snap *snapshot, now time.Time) []skiff.Node {
	names := map[string]bool{}
	for name := range snap.nodes {
		names[name] = true
	}
	for _, a := range snap.assignments {
		names[a.Node] = true
	}
	blind := !snap.lastAny.IsZero() && now.Sub(snap.lastAny) > snap.blindAfter
	var out []skiff.Node
	for name := range names {
		n, ok := snap.nodes[name]
		if !ok {
			n = skiff.Node{Name: name}
		}
		if _, seen := snap.heard[name]; !seen {
			snap.heard[name] = now
		}
		if n.State != skiff.NodeDead {
			switch silent := now.Sub(snap.heard[name]); {
			case silent > s.cfg.DeadAfter && !blind:
				n.State = skiff.NodeDead
			case silent > s.cfg.SuspectAfter:
				n.State = skiff.NodeSuspect
			default:
				n.State = skiff.NodeUp
			}
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// dying returns the nodes judged dead whose records do not say so yet.
// It holds back (leaving them suspect in nodes) when more than half of the
// agents fell silent together, for up to twice the grace period: that is
// more likely a fault of the network or the bus than that many machines
// dying at once. (When all fell silent, judge declares none dead: the
// leader is blind.)
func (s *Scheduler) dying(snap *snapshot, nodes []skiff.Node, now time.Time) []*skiff.Node {
	var dying []*skiff.Node
	agents := 0
	for i := range nodes {
		n := &nodes[i]
		if n.HasRole(skiff.RoleAgent) || snap.nodes[n.Name].Name == "" {
			agents++
		}
		if n.State == skiff.NodeDead && snap.nodes[n.Name].State != skiff.NodeDead {
			dying = append(dying, n)
		}
	}
	if len(dying) == 0 || 2*len(dying) <= agents {
		return dying
	}
	longest := time.Duration(0)
	for _, n := range dying {
		longest = max(longest, now.Sub(snap.heard[n.Name]))
	}
	if longest >= 2*s.cfg.DeadAfter {
		return dying
	}
	if now.Sub(snap.held) > s.cfg.DeadAfter {
		s.log.Warn("nodes silent together: waiting before declaring them dead", "silent", len(dying), "agents", agents)
		snap.held = now
	}
	for _, n := range dying {
		n.State = skiff.NodeSuspect
	}
	return nil
}

// declare writes the death of nodes into their records and deletes the
// reports of their instances, so that routers stop sending them requests
// at once. It reports false if a record could not be written (a heartbeat
// came in meanwhile, or the bus failed): nothing must then be moved off
// the node, and the next round judges again from fresh state.
func (s *Scheduler) declare(ctx context.Context, snap *snapshot, dying []*skiff.Node, now time.Time) bool {
	for _, n := range dying {
		silent := now.Sub(snap.heard[n.Name]).Round(100 * time.Millisecond)
		if rec, ok := snap.nodes[n.Name]; ok {
			rec.State, rec.StateSince = skiff.NodeDead, now.UTC()
			rev, err := s.st.Nodes.UpdateAt(ctx, n.Name, rec, snap.revs[skiff.BucketNodes+"/"+n.Name])
			if err != nil {
				s.log.Warn("declare node dead", "node", n.Name, "err", err)
				return false
			}
			snap.apply(update{bucket: skiff.BucketNodes, key: n.Name, rev: rev, value: rec})
		}
		s.log.Warn("node declared dead", "node", n.Name, "silent", silent)
		apps := map[string]bool{}
		for key, inst := range snap.instances {
			if inst.Node != n.Name {
				continue
			}
			if err := s.st.Instances.Delete(ctx, key); err != nil {
				s.log.Warn("delete a dead node's instance", "node", n.Name, "instance", key, "err", err)
				continue
			}
			delete(snap.instances, key)
			apps[inst.App] = true
		}
		for _, a := range snap.assignments {
			apps[a.App] = apps[a.App] || a.Node == n.Name
		}
		var affected []string
		for app, had := range apps {
			if had {
				affected = append(affected, app)
				s.st.Emit(skiff.Event{App: app, Type: skiff.EventNodeDead, Component: "scheduler", Node: n.Name,
					Message: fmt.Sprintf("Node %s is dead (silent for %s): its instances are started on other nodes", n.Name, silent)})
			}
		}
		sort.Strings(affected)
		msg := fmt.Sprintf("Node %s is dead (silent for %s)", n.Name, silent)
		if len(affected) > 0 {
			msg += ": the instances of " + strings.Join(affected, ", ") + " on it are started on other nodes"
		}
		s.st.Emit(skiff.Event{Type: skiff.EventNodeDead, Component: "scheduler", Node: n.Name, Message: msg})
	}
	return true
}

// round plans once and writes the plan, recording each successful write in
// the snapshot so the next round does not repeat it. Before anything is
// written, the lease is renewed: a leader that was paused past its lease
// (the revision is the fencing token) writes nothing.
func (s *Scheduler) round(ctx context.Context, snap *snapshot, lease *store.Lease) {
	now := time.Now()
	st := s.state(snap, now)
	dying := s.dying(snap, st.Nodes, now)
	plan := Compute(st, newID)
	unplacedSlots.Set(float64(plan.Unplaced))
	if len(dying) == 0 && plan.Empty() {
		return
	}
	if err := lease.Renew(ctx); err != nil {
		s.log.Warn("writing nothing: the scheduler lease is not renewed", "err", err)
		return
	}
	if !s.declare(ctx, snap, dying, now) {
		return
	}
	for _, ch := range plan.Statuses {
		key := skiff.ReleaseKey(ch.Release.App, ch.Release.Version)
		rev, err := s.st.Releases.UpdateAt(ctx, key, ch.Release, ch.Rev)
		if err != nil {
			s.log.Warn("set release status", "app", ch.Release.App, "release", ch.Release.Version, "err", err)
			return // decide again from fresh state
		}
		snap.apply(update{bucket: skiff.BucketReleases, key: key, rev: rev, value: ch.Release})
	}
	for _, ch := range plan.Current {
		app := snap.apps[ch.App].Value
		app.Current = ch.Version
		rev, err := s.st.Apps.UpdateAt(ctx, ch.App, app, ch.Rev)
		if err != nil {
			s.log.Warn("set current release", "app", ch.App, "release", ch.Version, "err", err)
			return
		}
		snap.apply(update{bucket: skiff.BucketApps, key: ch.App, rev: rev, value: app})
	}
	for _, a := range plan.Create {
		rev, err := s.st.Assignments.Create(ctx, a.Key(), a)
		if err != nil {
			s.log.Warn("create assignment", "app", a.App, "instance", a.Name(), "err", err)
			continue
		}
		placements.Inc()
		snap.apply(update{bucket: skiff.BucketAssignments, key: a.Key(), rev: rev, value: a})
	}
	for _, a := range plan.Delete {
		if err := s.st.Assignments.Delete(ctx, a.Key()); err != nil {
			s.log.Warn("delete assignment", "app", a.App, "instance", a.Name(), "err", err)
			continue
		}
		removals.Inc()
		delete(snap.assignments, a.Key())
	}
	for _, ev := range plan.Events {
		s.st.Emit(ev)
	}
}

func newID() string {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}
