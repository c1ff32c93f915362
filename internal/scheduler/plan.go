package scheduler

import (
	"fmt"
	"slices"
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
	// Nodes are the known nodes, each with the State the scheduler judged
	// from its heartbeats: NodeUp (or empty), NodeSuspect or NodeDead.
	Nodes []skiff.Node
}

// Moves in flight at once: a move starts an instance on another node and
// stops the old one once the new one is up. Draining nodes move several
// instances at a time; rebalancing one.
const (
	maxDrainMoves     = 4
	maxRebalanceMoves = 1
)

// Plan is what the loop must write to bring the state closer to what is
// desired.
type Plan struct {
	Create   []skiff.Assignment
	Delete   []skiff.Assignment
	Statuses []ReleaseChange
	Current  []CurrentChange
	Events   []skiff.Event
	// Unplaced counts the slots that found no node this round; they are
	// tried again the next (metrics.go).
	Unplaced int
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
	return a.Proc == s.proc && a.Index == s.index && a.Release == s.release && a.Generation == s.generation && sizeOr(a.Size) == s.size
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
	p := &planner{State: s, newID: newID, nodes: map[string]*skiff.Node{}, perNode: map[string]int{},
		perAppNode: map[string]int{}, reserved: map[string]int64{}}
	for i := range s.Nodes {
		p.nodes[s.Nodes[i].Name] = &s.Nodes[i]
	}
	byApp := map[string][]skiff.Assignment{}
	slots := map[string]int{} // assignments per app, slot identity
	for _, a := range s.Assignments {
		if p.dead(a.Node) {
			// Its instance went with its node: the slot is filled again
			// elsewhere in this same round.
			p.Delete = append(p.Delete, a)
			continue
		}
		byApp[a.App] = append(byApp[a.App], a)
		p.count(a, 1)
		slots[fmt.Sprintf("%s/%s/%d/%d/%d/%s", a.App, a.Proc, a.Index, a.Release, a.Generation, sizeOr(a.Size))]++
	}
	for _, n := range slots {
		if n > 1 {
			p.moves++
		}
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
	nodes      map[string]*skiff.Node
	perNode    map[string]int   // assignments per node
	perAppNode map[string]int   // assignments per app+"/"+node
	reserved   map[string]int64 // memory reserved per node
	moves      int              // slots with an instance moving to another node
	unplaced   string           // why the last placement found no node
}

// count adds (or, with -1, removes) a from the per-node counts.
func (p *planner) count(a skiff.Assignment, n int) {
	p.perNode[a.Node] += n
	p.perAppNode[a.App+"/"+a.Node] += n
	if node := p.nodes[a.Node]; node != nil {
		p.reserved[a.Node] += int64(n) * node.MemoryFor(sizeOr(a.Size))
	}
}

// dead reports whether the scheduler declared node dead. A node it knows
// nothing of is not: the scheduler names every node it judged.
func (p *planner) dead(node string) bool {
	n := p.nodes[node]
	return n != nil && n.State == skiff.NodeDead
}

func sizeOr(size string) string {
	if size == "" {
		return skiff.DefaultSize
	}
	return size
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
	p.steady(app.Value, *current, formation, assigned)
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
	if rel.ReleaseCommand != "" && !rel.PhaseDone {
		p.releasePhase(app.Value, target, assigned)
		return
	}
	slots := slotsOf(rel, f)
	mine := p.fill(app.Value, rel, slots, assigned, false)
	for _, a := range assigned {
		if a.Release == rel.Version && !inSlots(a, slots) {
			p.Delete = append(p.Delete, a) // scaled down meanwhile
		}
	}

	var notUp []string
	var crashed string
	for _, s := range slots {
		if !slices.ContainsFunc(mine, s.same) {
			notUp = append(notUp, skiff.ProcessName(s.proc, s.index)) // no node could take it
		}
	}
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
			if p.unplaced != "" {
				reason += ": " + p.unplaced
			} else if hasWeb(notUp) {
				reason += ": a web process must accept connections on $PORT"
			}
		}
		p.fail(app.Value.Name, target, assigned, reason)
	}
}

// releasePhase runs target's release command, once, before any of its
// processes start: an assignment run once (release.1) on a node picked as
// for any process. When it has exited, its result is written into the
// release: done, and the processes start (the boot timeout counts from
// then: a migration may take its time); or failed, and the release with
// it. Should its node die, it runs again elsewhere.
func (p *planner) releasePhase(app skiff.App, target Versioned[skiff.Release], assigned []skiff.Assignment) {
	rel := target.Value
	var phase *skiff.Assignment
	for i := range assigned {
		if assigned[i].Once && assigned[i].Release == rel.Version {
			phase = &assigned[i]
		}
	}
	if phase == nil {
		s := slot{proc: skiff.ReleaseProcess, index: 1, release: rel.Version, size: skiff.DefaultSize}
		node, why := p.pick(app, s.size, "")
		if node == "" {
			p.unplaced = why
			p.Unplaced++
			if target.Rev != 0 && p.Now.Sub(rel.DeployStarted) > p.BootTimeout {
				p.fail(app.Name, target, nil, "the release command could not start: "+why)
			}
			return
		}
		a := skiff.Assignment{ID: p.newID(), App: app.Name, Proc: s.proc, Index: s.index, Release: rel.Version, Node: node,
			Image: rel.Image, Command: rel.ReleaseCommand, Size: s.size, CreatedAt: p.Now, Once: true}
		p.Create = append(p.Create, a)
		p.count(a, 1)
		p.Events = append(p.Events, skiff.Event{App: app.Name, Type: skiff.EventReleasePhase, Release: rel.Version, Component: "scheduler",
			Message: fmt.Sprintf("Running release command `%s` of %s as %s on %s", rel.ReleaseCommand, rel.Label(), a.Name(), node)})
		return
	}
	inst, ok := p.Instances[phase.ID]
	if target.Rev == 0 || !ok || inst.State != skiff.StateExited {
		return
	}
	p.Delete = append(p.Delete, *phase)
	if inst.ExitCode != 0 {
		p.fail(app.Name, target, assigned, fmt.Sprintf("the release command `%s` failed (%s)", rel.ReleaseCommand, orUnknown(inst.ExitReason)))
		return
	}
	rel.PhaseDone, rel.DeployStarted = true, p.Now
	p.Statuses = append(p.Statuses, ReleaseChange{Release: rel, Rev: target.Rev})
	p.Events = append(p.Events, skiff.Event{App: app.Name, Type: skiff.EventReleasePhase, Release: rel.Version, Component: "scheduler",
		Message: fmt.Sprintf("Release command of %s succeeded: starting its processes", rel.Label())})
}

// fail marks target failed for reason, deletes its assignments among
// assigned, and says so.
func (p *planner) fail(app string, target Versioned[skiff.Release], assigned []skiff.Assignment, reason string) {
	rel := target.Value
	rel.Status, rel.StatusReason, rel.FinishedAt = skiff.ReleaseFailed, reason, p.Now
	p.Statuses = append(p.Statuses, ReleaseChange{Release: rel, Rev: target.Rev})
	for _, a := range assigned {
		if a.Release == rel.Version && !slices.ContainsFunc(p.Delete, func(d skiff.Assignment) bool { return d.ID == a.ID }) {
			p.Delete = append(p.Delete, a)
		}
	}
	p.Events = append(p.Events, skiff.Event{App: app, Type: skiff.EventReleaseFailed, Release: rel.Version,
		Component: "scheduler", Message: fmt.Sprintf("Release %s failed: %s; the previous release keeps serving", rel.Label(), reason)})
}

// steady keeps the current release's slots filled and retires what is not
// wanted any more.
func (p *planner) steady(app skiff.App, rel skiff.Release, f skiff.Formation, assigned []skiff.Assignment) {
	slots := slotsOf(rel, f)
	mine := p.fill(app, rel, slots, assigned, p.settled(slots, assigned))
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

// fill returns, for each slot, the assignment of rel meant to fill it,
// creating the missing ones. A slot has more than one assignment while its
// instance moves to another node (the node drains, the app's placement
// changed, or the instances are spread better): the newest is the one
// meant, and the others are deleted once it is up, so that the slot never
// goes without a running instance. Moves start only when the app is
// settled (every slot has an instance up) and few others are under way.
func (p *planner) fill(app skiff.App, rel skiff.Release, slots []slot, assigned []skiff.Assignment, settled bool) []skiff.Assignment {
	var out []skiff.Assignment
	for _, s := range slots {
		var cands []skiff.Assignment
		for _, a := range assigned {
			if s.same(a) {
				cands = append(cands, a)
			}
		}
		if len(cands) == 0 {
			if a, ok := p.create(app, rel, s, ""); ok {
				out = append(out, a)
			}
			continue
		}
		sort.Slice(cands, func(i, j int) bool {
			if !cands[i].CreatedAt.Equal(cands[j].CreatedAt) {
				return cands[i].CreatedAt.Before(cands[j].CreatedAt)
			}
			return cands[i].ID < cands[j].ID
		})
		newest := cands[len(cands)-1]
		if len(cands) > 1 {
			if p.up(newest) {
				for _, old := range cands[:len(cands)-1] {
					p.Delete = append(p.Delete, old)
					p.count(old, -1)
				}
			}
			out = append(out, newest)
			continue
		}
		if why := p.shouldMove(app, newest, settled); why != "" {
			if a, ok := p.create(app, rel, s, newest.Node); ok {
				p.moves++
				p.Events = append(p.Events, skiff.Event{App: app.Name, Type: skiff.EventInstanceMoved, Release: rel.Version,
					Instance: newest.Name(), Component: "scheduler",
					Message: fmt.Sprintf("Moving %s from %s to %s: %s", newest.Name(), newest.Node, a.Node, why)})
				out = append(out, a)
				continue
			}
		}
		out = append(out, newest)
	}
	return out
}

// settled reports whether every slot has an instance up.
func (p *planner) settled(slots []slot, assigned []skiff.Assignment) bool {
	for _, s := range slots {
		up := false
		for _, a := range assigned {
			if s.same(a) && p.up(a) {
				up = true
				break
			}
		}
		if !up {
			return false
		}
	}
	return true
}

func (p *planner) up(a skiff.Assignment) bool {
	i, ok := p.Instances[a.ID]
	return ok && i.State == skiff.StateUp
}

// shouldMove says why a's instance should run on another node, or "".
func (p *planner) shouldMove(app skiff.App, a skiff.Assignment, settled bool) string {
	n := p.nodes[a.Node]
	if n == nil || !settled {
		return ""
	}
	switch {
	case n.Drain:
		if p.moves < maxDrainMoves {
			return "node " + n.Name + " is draining"
		}
	case !matches(*n, app.Placement):
		if p.moves < maxDrainMoves {
			return "the app's placement asks for " + formatLabels(app.Placement)
		}
	case p.moves < maxRebalanceMoves:
		to, _ := p.pick(app, sizeOr(a.Size), a.Node)
		if to == "" {
			return ""
		}
		from, dest := p.perAppNode[app.Name+"/"+a.Node], p.perAppNode[app.Name+"/"+to]
		switch {
		case dest+1 < from:
			return "to spread the app's instances"
		case dest+1 <= from && p.perNode[to]+1 < p.perNode[a.Node]:
			return "to balance the nodes' load"
		}
	}
	return ""
}

// create makes a new assignment of rel for slot s on the best node other
// than exclude.
func (p *planner) create(app skiff.App, rel skiff.Release, s slot, exclude string) (skiff.Assignment, bool) {
	node, why := p.pick(app, s.size, exclude)
	if node == "" {
		p.unplaced = why
		p.Unplaced++
		return skiff.Assignment{}, false
	}
	a := skiff.Assignment{
		ID: p.newID(), App: app.Name, Proc: s.proc, Index: s.index, Release: rel.Version, Generation: s.generation,
		Node: node, Image: rel.Image, Command: rel.Processes[s.proc], Size: s.size, CreatedAt: p.Now,
	}
	p.Create = append(p.Create, a)
	p.count(a, 1)
	return a, true
}

// spreadLabels are the node labels an app's instances are spread over,
// widest first.
var spreadLabels = []string{"region", "zone"}

// pick chooses the node for a new instance of app of the given size, other
// than exclude: among the live nodes with the agent role that are not
// draining, match the app's placement and have the memory free, the one
// with the fewest of the app's instances in its region, then zone, then
// on itself; then the one with the most memory free, then the fewest
// instances. It says why when no node fits.
func (p *planner) pick(app skiff.App, size, exclude string) (string, string) {
	var best *skiff.Node
	var bestKey []int64
	agents, matching := 0, 0
	for i := range p.Nodes {
		n := &p.Nodes[i]
		if n.Name == exclude || !n.HasRole(skiff.RoleAgent) || n.Drain || (n.State != "" && n.State != skiff.NodeUp) {
			continue
		}
		agents++
		if !matches(*n, app.Placement) {
			continue
		}
		matching++
		need := n.MemoryFor(size)
		if n.Memory > 0 && p.reserved[n.Name]+need > n.Memory {
			continue
		}
		key := make([]int64, 0, len(spreadLabels)+3)
		for _, l := range spreadLabels {
			key = append(key, int64(p.inLabel(app.Name, *n, l)))
		}
		free := int64(0)
		if n.Memory > 0 {
			free = n.Memory - p.reserved[n.Name]
		}
		key = append(key, int64(p.perAppNode[app.Name+"/"+n.Name]), -free, int64(p.perNode[n.Name]))
		if c := slices.Compare(key, bestKey); best == nil || c < 0 || (c == 0 && n.Name < best.Name) {
			best, bestKey = n, key
		}
	}
	switch {
	case best != nil:
		return best.Name, ""
	case agents == 0:
		return "", "no node with the agent role is available"
	case matching == 0:
		return "", "no available node has the labels " + formatLabels(app.Placement) + " the app's placement asks for"
	default:
		return "", fmt.Sprintf("no node has the memory free for a %s process", size)
	}
}

// inLabel counts app's instances on nodes with n's value of label.
func (p *planner) inLabel(app string, n skiff.Node, label string) int {
	v, ok := n.Labels[label]
	if !ok {
		return 0
	}
	count := 0
	for _, m := range p.Nodes {
		if m.Labels[label] == v {
			count += p.perAppNode[app+"/"+m.Name]
		}
	}
	return count
}

func matches(n skiff.Node, want map[string]string) bool {
	for k, v := range want {
		if n.Labels[k] != v {
			return false
		}
	}
	return true
}

func formatLabels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ",")
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
