package scheduler

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Versioned is a record with the revision it was read at, so that a change
// to it can be written only if nothing else changed it meanwhile.
type Versioned[T any] struct {
	Value T
	Rev   uint64
}

// State is the snapshot of platform state the planner decides from.
type State struct {
	Now time.Time
	// BootTimeout bounds how long a release's instances may take to come up.
	BootTimeout time.Duration
	Apps        map[string]Versioned[skiff.App]
	// Releases holds each app's releases, oldest first.
	Releases    map[string][]Versioned[skiff.Release]
	Formations  map[string]skiff.Formation
	Assignments map[string]skiff.Assignment // by ID
	Instances   map[string]skiff.Instance   // by ID
	// Nodes are the nodes that may take new instances.
	Nodes []skiff.Node
}

// Plan is what the loop must write to bring the state closer to what is
// desired.
type Plan struct {
	Create   []skiff.Assignment
	Delete   []skiff.Assignment
	Statuses []ReleaseChange
	Current  []CurrentChange
	Events   []skiff.Event
}

// Empty reports whether the plan changes nothing.
func (p Plan) Empty() bool {
	return len(p.Create)+len(p.Delete)+len(p.Statuses)+len(p.Current)+len(p.Events) == 0
}

// ReleaseChange sets a release's status; Rev is the revision it was read at.
type ReleaseChange struct {
	Release skiff.Release
	Rev     uint64
}

// CurrentChange makes a release the one serving its app.
type CurrentChange struct {
	App     string
	Version int
	Rev     uint64
}

// slot is one desired instance of an app: a process type, an index, and the
// release and restart generation it must run.
type slot struct {
	proc       string
	index      int
	release    int
	generation int
	size       string
}

// same reports whether a fills s. An assignment of another size does
// not: a resize replaces a type's processes as a restart does.
func (s slot) same(a skiff.Assignment) bool {
	size := a.Size
	if size == "" {
		size = skiff.DefaultSize
	}
	return a.Proc == s.proc && a.Index == s.index && a.Release == s.release && a.Generation == s.generation && size == s.size
}

// Compute decides, for every app, which instances should exist, whether a
// rollout has succeeded or failed, and which old instances may go. newID
// names new assignments.
//
// Per app, the target is the newest release still pending or deploying.
// While there is one, its instances are started beside the current ones;
// when every one of them is up the target becomes current and every other
// instance of the app is deleted (traffic switches, then the old ones
// drain). If one of them crash-loops, or they are not all up within the
// boot timeout, the target fails and only its own instances are deleted.
// With no target, the current release's slots are kept filled; an instance
// replaced by a restart or a changed slot stays until its replacement is up.
func Compute(s *State, newID func() string) Plan {
	p := &planner{State: s, newID: newID, perNode: map[string]int{}, perAppNode: map[string]int{}}
	for _, a := range s.Assignments {
		p.perNode[a.Node]++
		p.perAppNode[a.App+"/"+a.Node]++
	}
	byApp := map[string][]skiff.Assignment{}
	for _, a := range s.Assignments {
		byApp[a.App] = append(byApp[a.App], a)
	}
	names := make([]string, 0, len(s.Apps)+len(byApp))
	for name := range s.Apps {
		names = append(names, name)
	}
	for name := range byApp {
		if _, ok := s.Apps[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		assigned := byApp[name]
		sort.Slice(assigned, func(i, j int) bool { return assigned[i].ID < assigned[j].ID })
		app, ok := s.Apps[name]
		if !ok {
			p.Delete = append(p.Delete, assigned...) // destroyed app
			continue
		}
		p.app(app, assigned)
	}
	return p.Plan
}

type planner struct {
	*State
	Plan
	newID      func() string
	perNode    map[string]int // assignments per node
	perAppNode map[string]int // assignments per app+"/"+node
}

func (p *planner) app(app Versioned[skiff.App], assigned []skiff.Assignment) {
	name := app.Value.Name
	rels := p.State.Releases[name]
	formation := p.Formations[name]

	var target *Versioned[skiff.Release]
	var current *skiff.Release
	for i := len(rels) - 1; i >= 0; i-- {
		r := &rels[i]
		if r.Value.Version == app.Value.Current {
			current = &r.Value
		} else if target == nil && isLive(r.Value) && r.Value.Version > app.Value.Current {
			target = r
		}
	}
	for _, r := range rels {
		if !isLive(r.Value) || r.Value.Version == app.Value.Current || (target != nil && r.Value.Version == target.Value.Version) {
			continue
		}
		// An older release still rolling out: a newer one replaces it.
		by := skiff.VersionLabel(app.Value.Current)
		if target != nil {
			by = target.Value.Label()
		}
		p.setStatus(r, skiff.ReleaseSuperseded, "superseded by "+by)
		p.Events = append(p.Events, skiff.Event{App: name, Type: skiff.EventReleaseSuperseded, Release: r.Value.Version,
			Component: "scheduler", Message: fmt.Sprintf("Release %s superseded by %s", r.Value.Label(), by)})
		for _, a := range assigned {
			if a.Release == r.Value.Version {
				p.Delete = append(p.Delete, a)
			}
		}
	}
	if target != nil {
		p.rollout(app, *target, formation, assigned)
		return
	}
	if current == nil {
		p.Delete = append(p.Delete, assigned...)
		return
	}
	p.steady(*current, formation, assigned)
}

// rollout starts the target's instances and commits or fails the release.
func (p *planner) rollout(app Versioned[skiff.App], target Versioned[skiff.Release], f skiff.Formation, assigned []skiff.Assignment) {
	rel := target.Value
	if rel.Status == skiff.ReleasePending {
		rel.Status = skiff.ReleaseDeploying
		rel.DeployStarted = p.Now
		p.Statuses = append(p.Statuses, ReleaseChange{Release: rel, Rev: target.Rev})
		target = Versioned[skiff.Release]{Value: rel, Rev: 0} // the status write above must land first
	}
	slots := slotsOf(rel, f)
	mine := p.fill(app.Value.Name, rel, slots, assigned)
	for _, a := range assigned {
		if a.Release == rel.Version && !inSlots(a, slots) {
			p.Delete = append(p.Delete, a) // scaled down meanwhile
		}
	}

	var notUp []string
	var crashed string
	for _, a := range mine {
		inst, ok := p.Instances[a.ID]
		if !ok || inst.State != skiff.StateUp {
			notUp = append(notUp, a.Name())
		}
		if ok && inst.CrashLoop && crashed == "" {
			crashed = fmt.Sprintf("%s crashed repeatedly (%s)", a.Name(), orUnknown(inst.ExitReason))
		}
	}
	if target.Rev == 0 {
		return // wait for the deploying status to be written before deciding
	}
	switch {
	case len(notUp) == 0:
		rel.Status, rel.StatusReason, rel.FinishedAt = skiff.ReleaseSucceeded, "", p.Now
		p.Statuses = append(p.Statuses, ReleaseChange{Release: rel, Rev: target.Rev})
		p.Current = append(p.Current, CurrentChange{App: app.Value.Name, Version: rel.Version, Rev: app.Rev})
		for _, a := range assigned {
			if !inSlots(a, slots) {
				p.Delete = append(p.Delete, a)
			}
		}
		msg := fmt.Sprintf("Release %s deployed", rel.Label())
		if len(mine) > 0 {
			msg += ": " + strings.Join(names(mine), ", ") + " up"
		}
		p.Events = append(p.Events, skiff.Event{App: app.Value.Name, Type: skiff.EventReleaseDeployed, Release: rel.Version,
			Component: "scheduler", Message: msg})
	case crashed != "" || p.Now.Sub(rel.DeployStarted) > p.BootTimeout:
		reason := crashed
		if reason == "" {
			reason = fmt.Sprintf("%s not up within %s", strings.Join(notUp, ", "), p.BootTimeout)
			if len(p.Nodes) == 0 {
				reason += ": no node with the agent role is available"
			} else if hasWeb(notUp) {
				reason += ": a web process must accept connections on $PORT"
			}
		}
		rel.Status, rel.StatusReason, rel.FinishedAt = skiff.ReleaseFailed, reason, p.Now
		p.Statuses = append(p.Statuses, ReleaseChange{Release: rel, Rev: target.Rev})
		for _, a := range assigned {
			if a.Release == rel.Version {
				p.Delete = append(p.Delete, a)
			}
		}
		p.Events = append(p.Events, skiff.Event{App: app.Value.Name, Type: skiff.EventReleaseFailed, Release: rel.Version,
			Component: "scheduler", Message: fmt.Sprintf("Release %s failed: %s; the previous release keeps serving", rel.Label(), reason)})
	}
}

// steady keeps the current release's slots filled and retires what is not
// wanted any more.
func (p *planner) steady(rel skiff.Release, f skiff.Formation, assigned []skiff.Assignment) {
	slots := slotsOf(rel, f)
	mine := p.fill(rel.App, rel, slots, assigned)
	up := map[string]bool{} // "proc.index" whose wanted instance is up
	for _, a := range mine {
		if inst, ok := p.Instances[a.ID]; ok && inst.State == skiff.StateUp {
			up[a.Name()] = true
		}
	}
	wanted := map[string]bool{}
	for _, s := range slots {
		wanted[skiff.ProcessName(s.proc, s.index)] = true
	}
	for _, a := range assigned {
		switch {
		case inSlots(a, slots):
		case wanted[a.Name()] && !up[a.Name()]:
			// Replaced (restart, or leftover of an older release): keep it
			// serving until its replacement is up.
		default:
			p.Delete = append(p.Delete, a)
		}
	}
}

// fill returns the assignments of rel that fill slots, creating the
// missing ones.
func (p *planner) fill(app string, rel skiff.Release, slots []slot, assigned []skiff.Assignment) []skiff.Assignment {
	var out []skiff.Assignment
	for _, s := range slots {
		var found *skiff.Assignment
		for i := range assigned {
			if s.same(assigned[i]) {
				found = &assigned[i]
				break
			}
		}
		if found != nil {
			out = append(out, *found)
			continue
		}
		node, ok := p.place(app)
		if !ok {
			continue
		}
		a := skiff.Assignment{
			ID: p.newID(), App: app, Proc: s.proc, Index: s.index, Release: rel.Version, Generation: s.generation,
			Node: node, Image: rel.Image, Command: rel.Processes[s.proc], Size: s.size, CreatedAt: p.Now,
		}
		p.Create = append(p.Create, a)
		out = append(out, a)
	}
	return out
}

// place picks the node for a new instance of app: the one with the fewest
// instances of the app, then the fewest instances overall.
func (p *planner) place(app string) (string, bool) {
	best, bestApp, bestAll := "", 0, 0
	for _, n := range p.Nodes {
		na, nt := p.perAppNode[app+"/"+n.Name], p.perNode[n.Name]
		if best == "" || na < bestApp || (na == bestApp && (nt < bestAll || (nt == bestAll && n.Name < best))) {
			best, bestApp, bestAll = n.Name, na, nt
		}
	}
	if best == "" {
		return "", false
	}
	p.perAppNode[app+"/"+best]++
	p.perNode[best]++
	return best, true
}

func (p *planner) setStatus(r Versioned[skiff.Release], status skiff.ReleaseStatus, reason string) {
	rel := r.Value
	rel.Status, rel.StatusReason, rel.FinishedAt = status, reason, p.Now
	p.Statuses = append(p.Statuses, ReleaseChange{Release: rel, Rev: r.Rev})
}

func isLive(r skiff.Release) bool {
	return r.Status == skiff.ReleasePending || r.Status == skiff.ReleaseDeploying
}

func slotsOf(rel skiff.Release, f skiff.Formation) []slot {
	var out []slot
	for _, proc := range rel.ProcessTypes() {
		for i := 1; i <= f.Count(proc); i++ {
			out = append(out, slot{proc: proc, index: i, release: rel.Version, generation: f.Generation(proc), size: f.Size(proc)})
		}
	}
	return out
}

func inSlots(a skiff.Assignment, slots []slot) bool {
	for _, s := range slots {
		if s.same(a) {
			return true
		}
	}
	return false
}

func names(as []skiff.Assignment) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Name()
	}
	return out
}

func hasWeb(names []string) bool {
	for _, n := range names {
		if strings.HasPrefix(n, "web.") {
			return true
		}
	}
	return false
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown exit"
	}
	return s
}
