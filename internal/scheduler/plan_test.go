package scheduler

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// world builds planner states for tests.
type world struct{ s *State }

func newWorld(nodes ...string) *world {
	s := &State{Now: t0, BootTimeout: time.Minute,
		Apps: map[string]Versioned[skiff.App]{}, Releases: map[string][]Versioned[skiff.Release]{},
		Formations: map[string]skiff.Formation{}, Assignments: map[string]skiff.Assignment{}, Instances: map[string]skiff.Instance{}}
	for _, n := range nodes {
		s.Nodes = append(s.Nodes, skiff.Node{Name: n, Roles: []string{skiff.RoleAgent}})
	}
	return &world{s}
}

func (w *world) app(name string, current int) *world {
	w.s.Apps[name] = Versioned[skiff.App]{Value: skiff.App{Name: name, Current: current}, Rev: 1}
	return w
}

func (w *world) release(app string, v int, status skiff.ReleaseStatus, procs ...string) *world {
	r := skiff.Release{App: app, Version: v, Status: status, Processes: map[string]string{}, DeployStarted: t0}
	for _, p := range procs {
		r.Processes[p] = "./" + p
	}
	w.s.Releases[app] = append(w.s.Releases[app], Versioned[skiff.Release]{Value: r, Rev: uint64(10 + v)})
	return w
}

// instance adds an assignment and, unless state is "", the agent's report.
func (w *world) instance(app, proc string, index, release, gen int, node string, state skiff.InstanceState) *world {
	id := fmt.Sprintf("%s-%s%d-v%d-g%d", app, proc, index, release, gen)
	w.s.Assignments[id] = skiff.Assignment{ID: id, App: app, Proc: proc, Index: index, Release: release, Generation: gen, Node: node}
	if state != "" {
		w.s.Instances[id] = skiff.Instance{ID: id, App: app, Proc: proc, Index: index, Release: release, State: state}
	}
	return w
}

func (w *world) crashLoop(app, proc string, index, release, gen int) *world {
	id := fmt.Sprintf("%s-%s%d-v%d-g%d", app, proc, index, release, gen)
	i := w.s.Instances[id]
	i.State, i.CrashLoop, i.ExitReason = skiff.StateCrashed, true, "exit status 1"
	w.s.Instances[id] = i
	return w
}

func (w *world) plan() Plan {
	n := 0
	return Compute(w.s, func() string { n++; return fmt.Sprintf("new%d", n) })
}

// summary renders a plan compactly: "+web.1@v2/n1", "-web.1@v1", "v2=deploying", "current=v2".
func summary(p Plan) string {
	var out []string
	for _, a := range p.Create {
		out = append(out, fmt.Sprintf("+%s@v%d/g%d/%s", a.Name(), a.Release, a.Generation, a.Node))
	}
	for _, a := range p.Delete {
		out = append(out, fmt.Sprintf("-%s@v%d/g%d", a.Name(), a.Release, a.Generation))
	}
	for _, r := range p.Statuses {
		out = append(out, fmt.Sprintf("%s=%s", r.Release.Label(), r.Release.Status))
	}
	for _, c := range p.Current {
		out = append(out, fmt.Sprintf("current=v%d", c.Version))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestCompute(t *testing.T) {
	tests := []struct {
		name  string
		world *world
		want  string
	}{
		{"first deploy starts web only",
			newWorld("n1").app("a", 0).release("a", 1, skiff.ReleasePending, "web", "worker"),
			"+web.1@v1/g0/n1 v1=deploying"},
		{"first deploy commits when web is up",
			newWorld("n1").app("a", 0).release("a", 1, skiff.ReleaseDeploying, "web").instance("a", "web", 1, 1, 0, "n1", skiff.StateUp),
			"current=v1 v1=succeeded"},
		{"waits while the new instance starts, keeping the old",
			newWorld("n1").app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web").release("a", 2, skiff.ReleaseDeploying, "web").
				instance("a", "web", 1, 1, 0, "n1", skiff.StateUp).instance("a", "web", 1, 2, 0, "n1", skiff.StateStarting),
			""},
		{"switches and retires the old release once the new is up",
			newWorld("n1").app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web").release("a", 2, skiff.ReleaseDeploying, "web").
				instance("a", "web", 1, 1, 0, "n1", skiff.StateUp).instance("a", "web", 1, 2, 0, "n1", skiff.StateUp),
			"-web.1@v1/g0 current=v2 v2=succeeded"},
		{"a crash loop fails the release and keeps the old one",
			newWorld("n1").app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web").release("a", 2, skiff.ReleaseDeploying, "web").
				instance("a", "web", 1, 1, 0, "n1", skiff.StateUp).instance("a", "web", 1, 2, 0, "n1", skiff.StateStarting).crashLoop("a", "web", 1, 2, 0),
			"-web.1@v2/g0 v2=failed"},
		{"no web up within the boot timeout fails the release",
			func() *world {
				w := newWorld("n1").app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web").release("a", 2, skiff.ReleaseDeploying, "web").
					instance("a", "web", 1, 1, 0, "n1", skiff.StateUp).instance("a", "web", 1, 2, 0, "n1", skiff.StateStarting)
				w.s.Now = t0.Add(2 * time.Minute)
				return w
			}(),
			"-web.1@v2/g0 v2=failed"},
		{"a newer release supersedes one still deploying",
			newWorld("n1").app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web").release("a", 2, skiff.ReleaseDeploying, "web").
				release("a", 3, skiff.ReleasePending, "web").
				instance("a", "web", 1, 1, 0, "n1", skiff.StateUp).instance("a", "web", 1, 2, 0, "n1", skiff.StateStarting),
			"+web.1@v3/g0/n1 -web.1@v2/g0 v2=superseded v3=deploying"},
		{"scale up fills new slots",
			func() *world {
				w := newWorld("n1").app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web", "worker").instance("a", "web", 1, 1, 0, "n1", skiff.StateUp)
				w.s.Formations["a"] = skiff.Formation{Quantity: map[string]int{"web": 2, "worker": 1}}
				return w
			}(),
			"+web.2@v1/g0/n1 +worker.1@v1/g0/n1"},
		{"scale down retires slots",
			func() *world {
				w := newWorld("n1").app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web").
					instance("a", "web", 1, 1, 0, "n1", skiff.StateUp).instance("a", "web", 2, 1, 0, "n1", skiff.StateUp)
				w.s.Formations["a"] = skiff.Formation{Quantity: map[string]int{"web": 1}}
				return w
			}(),
			"-web.2@v1/g0"},
		{"a restart starts replacements and keeps the old until they are up",
			func() *world {
				w := newWorld("n1").app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web").instance("a", "web", 1, 1, 0, "n1", skiff.StateUp)
				w.s.Formations["a"] = skiff.Formation{Generations: map[string]int{"web": 1}}
				return w
			}(),
			"+web.1@v1/g1/n1"},
		{"a restarted instance goes once its replacement is up",
			func() *world {
				w := newWorld("n1").app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web").
					instance("a", "web", 1, 1, 0, "n1", skiff.StateUp).instance("a", "web", 1, 1, 1, "n1", skiff.StateUp)
				w.s.Formations["a"] = skiff.Formation{Generations: map[string]int{"web": 1}}
				return w
			}(),
			"-web.1@v1/g0"},
		{"a destroyed app loses its instances",
			newWorld("n1").instance("gone", "web", 1, 1, 0, "n1", skiff.StateUp),
			"-web.1@v1/g0"},
		{"a release with nothing to run succeeds at once",
			func() *world {
				w := newWorld("n1").app("a", 0).release("a", 1, skiff.ReleaseDeploying, "worker")
				return w
			}(),
			"current=v1 v1=succeeded"},
		{"without nodes nothing is placed",
			newWorld().app("a", 0).release("a", 1, skiff.ReleasePending, "web"),
			"v1=deploying"},
		{"an app whose only release failed runs nothing",
			newWorld("n1").app("a", 0).release("a", 1, skiff.ReleaseFailed, "web"),
			""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summary(tt.world.plan()); got != tt.want {
				t.Fatalf("plan:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestComputeSpreadsInstancesOverNodes(t *testing.T) {
	w := newWorld("n1", "n2").app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web").
		instance("b", "web", 1, 1, 0, "n1", skiff.StateUp).app("b", 1).release("b", 1, skiff.ReleaseSucceeded, "web")
	w.s.Formations["a"] = skiff.Formation{Quantity: map[string]int{"web": 2}}
	got := summary(w.plan())
	if got != "+web.1@v1/g0/n2 +web.2@v1/g0/n1" {
		t.Fatalf("placement = %q: want a's two instances on different nodes, the first on the emptier one", got)
	}
}

func TestComputeFailureReasons(t *testing.T) {
	w := newWorld("n1").app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web").release("a", 2, skiff.ReleaseDeploying, "web").
		instance("a", "web", 1, 2, 0, "n1", skiff.StateStarting)
	w.s.Now = t0.Add(2 * time.Minute)
	p := w.plan()
	if len(p.Statuses) != 1 || !strings.Contains(p.Statuses[0].Release.StatusReason, "web.1 not up within 1m0s") ||
		!strings.Contains(p.Statuses[0].Release.StatusReason, "$PORT") {
		t.Fatalf("timeout reason = %+v", p.Statuses)
	}
	if len(p.Events) != 1 || p.Events[0].Type != skiff.EventReleaseFailed || !strings.Contains(p.Events[0].Message, "previous release keeps serving") {
		t.Fatalf("events = %+v", p.Events)
	}
	w = newWorld("n1").app("a", 0).release("a", 1, skiff.ReleaseDeploying, "web").instance("a", "web", 1, 1, 0, "n1", skiff.StateStarting).crashLoop("a", "web", 1, 1, 0)
	p = w.plan()
	if len(p.Statuses) != 1 || p.Statuses[0].Release.StatusReason != "web.1 crashed repeatedly (exit status 1)" {
		t.Fatalf("crash reason = %+v", p.Statuses)
	}
}

// TestResizeReplacesOneByOne: a new size for a type starts replacements
// of that size beside the old processes, which go once those are up.
func TestResizeReplacesOneByOne(t *testing.T) {
	w := newWorld("n1").app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web").instance("a", "web", 1, 1, 0, "n1", skiff.StateUp)
	w.s.Formations["a"] = skiff.Formation{App: "a", Sizes: map[string]string{"web": "2x"}}
	p := w.plan()
	if got := summary(p); got != "+web.1@v1/g0/n1" || p.Create[0].Size != "2x" {
		t.Fatalf("plan %q, size %q", got, p.Create[0].Size)
	}
	a := p.Create[0]
	w.s.Assignments[a.ID] = a
	w.s.Instances[a.ID] = skiff.Instance{ID: a.ID, App: "a", Proc: "web", Index: 1, Release: 1, State: skiff.StateUp}
	if got := summary(w.plan()); got != "-web.1@v1/g0" {
		t.Fatalf("once the 2x process is up: %q, want the 1x one retired", got)
	}
}
