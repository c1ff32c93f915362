package scheduler

import (
	"strings"
	"testing"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// set changes node name of the world.
func (w *world) set(name string, change func(*skiff.Node)) *world {
	for i := range w.s.Nodes {
		if w.s.Nodes[i].Name == name {
			change(&w.s.Nodes[i])
		}
	}
	return w
}

// moved adds a second assignment of a slot, newer, on node: an instance
// moving there.
func (w *world) moved(app, proc string, index int, node string, state skiff.InstanceState) *world {
	id := "moved-" + app + proc
	w.s.Assignments[id] = skiff.Assignment{ID: id, App: app, Proc: proc, Index: index, Release: 1, Node: node, CreatedAt: t0.Add(1)}
	w.s.Instances[id] = skiff.Instance{ID: id, App: app, Proc: proc, Index: index, Release: 1, State: state}
	return w
}

func (w *world) scale(app string, q map[string]int) *world {
	w.s.Formations[app] = skiff.Formation{App: app, Quantity: q}
	return w
}

// twoWebs is an app "a" with web.1 on n1 and web.2 on n2, both up.
func twoWebs(nodes ...string) *world {
	return newWorld(nodes...).app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web").scale("a", map[string]int{"web": 2}).
		instance("a", "web", 1, 1, 0, "n1", skiff.StateUp).instance("a", "web", 2, 1, 0, "n2", skiff.StateUp)
}

func TestComputeNodes(t *testing.T) {
	dead := func(n *skiff.Node) { n.State = skiff.NodeDead }
	tests := []struct {
		name  string
		world *world
		want  string
	}{
		{"a dead node's instances are started on a live node at once",
			twoWebs("n1", "n2", "n3").set("n2", dead),
			"+web.2@v1/g0/n3 -web.2@v1/g0"},
		{"with no other node, on the survivor",
			twoWebs("n1", "n2").set("n2", dead),
			"+web.2@v1/g0/n1 -web.2@v1/g0"},
		{"a suspect node keeps its instances but takes no new one",
			newWorld("n1", "n2", "n3").app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web").scale("a", map[string]int{"web": 3}).
				instance("a", "web", 1, 1, 0, "n1", skiff.StateUp).instance("a", "web", 2, 1, 0, "n3", skiff.StateUp).
				set("n2", func(n *skiff.Node) { n.State = skiff.NodeSuspect }),
			"+web.3@v1/g0/n1"},
		{"a draining node's instance moves: the new one first",
			twoWebs("n1", "n2", "n3").set("n2", func(n *skiff.Node) { n.Drain = true }),
			"+web.2@v1/g0/n3"},
		{"the old one goes once the new one is up",
			twoWebs("n1", "n2", "n3").set("n2", func(n *skiff.Node) { n.Drain = true }).moved("a", "web", 2, "n3", skiff.StateUp),
			"-web.2@v1/g0"},
		{"nothing moves while the app is not settled",
			twoWebs("n1", "n2", "n3").set("n2", func(n *skiff.Node) { n.Drain = true }).instance("a", "web", 1, 1, 0, "n1", skiff.StateStarting),
			""},
		{"a new node takes one instance of a crowded node",
			newWorld("n1", "n2").app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web").scale("a", map[string]int{"web": 2}).
				instance("a", "web", 1, 1, 0, "n1", skiff.StateUp).instance("a", "web", 2, 1, 0, "n1", skiff.StateUp),
			"+web.1@v1/g0/n2"},
		{"balanced apps stay where they are",
			twoWebs("n1", "n2", "n3"),
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

// TestComputeMovesOneAtATime: rebalancing onto a new node moves one
// instance, and the next only once the first has finished moving.
func TestComputeMovesOneAtATime(t *testing.T) {
	w := newWorld("n1", "n2").app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web").scale("a", map[string]int{"web": 4})
	for i := 1; i <= 4; i++ {
		w.instance("a", "web", i, 1, 0, "n1", skiff.StateUp)
	}
	p := w.plan()
	if got := summary(p); got != "+web.1@v1/g0/n2" {
		t.Fatalf("first round: %q", got)
	}
	if len(p.Events) != 1 || p.Events[0].Type != skiff.EventInstanceMoved || !strings.Contains(p.Events[0].Message, "from n1 to n2") {
		t.Fatalf("events %+v", p.Events)
	}
	a := p.Create[0]
	w.s.Assignments[a.ID] = a
	if got := summary(w.plan()); got != "" {
		t.Fatalf("while web.1 moves: %q, want nothing more", got)
	}
	w.s.Instances[a.ID] = skiff.Instance{ID: a.ID, App: "a", Proc: "web", Index: 1, Release: 1, State: skiff.StateUp}
	if got := summary(w.plan()); got != "-web.1@v1/g0" {
		t.Fatalf("once the new web.1 is up: %q", got)
	}
}

func TestComputePlacement(t *testing.T) {
	label := func(kv ...string) func(*skiff.Node) {
		return func(n *skiff.Node) {
			n.Labels = map[string]string{}
			for i := 0; i < len(kv); i += 2 {
				n.Labels[kv[i]] = kv[i+1]
			}
		}
	}
	t.Run("spread over zones before nodes", func(t *testing.T) {
		w := newWorld("n1", "n2", "n3").set("n1", label("zone", "a")).set("n2", label("zone", "a")).set("n3", label("zone", "b")).
			app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web").scale("a", map[string]int{"web": 3})
		if got := summary(w.plan()); got != "+web.1@v1/g0/n1 +web.2@v1/g0/n3 +web.3@v1/g0/n2" {
			t.Fatalf("plan %q", got)
		}
	})
	t.Run("pinned to a region", func(t *testing.T) {
		w := newWorld("n1", "n2", "n3").set("n1", label("region", "us")).set("n2", label("region", "eu")).set("n3", label("region", "eu")).
			app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web").scale("a", map[string]int{"web": 3})
		app := w.s.Apps["a"]
		app.Value.Placement = map[string]string{"region": "eu"}
		w.s.Apps["a"] = app
		if got := summary(w.plan()); got != "+web.1@v1/g0/n2 +web.2@v1/g0/n3 +web.3@v1/g0/n2" {
			t.Fatalf("plan %q", got)
		}
	})
	t.Run("a new pin moves instances", func(t *testing.T) {
		w := twoWebs("n1", "n2", "n3").set("n3", label("region", "eu")).set("n2", label("region", "eu"))
		app := w.s.Apps["a"]
		app.Value.Placement = map[string]string{"region": "eu"}
		w.s.Apps["a"] = app
		if got := summary(w.plan()); got != "+web.1@v1/g0/n3" {
			t.Fatalf("plan %q", got)
		}
	})
	t.Run("by memory", func(t *testing.T) {
		mem := func(total int64) func(*skiff.Node) {
			return func(n *skiff.Node) { n.Memory, n.InstanceMemory = total<<20, 512<<20 }
		}
		w := newWorld("n1", "n2").set("n1", mem(1024)).set("n2", mem(4096)).
			app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web").scale("a", map[string]int{"web": 3})
		w.s.Formations["a"] = skiff.Formation{App: "a", Quantity: map[string]int{"web": 3}, Sizes: map[string]string{"web": "2x"}}
		// 1 GiB on n1 takes one 2x process; 4 GiB on n2 the other two.
		if got := summary(w.plan()); got != "+web.1@v1/g0/n2 +web.2@v1/g0/n1 +web.3@v1/g0/n2" {
			t.Fatalf("plan %q", got)
		}
		w = newWorld("n1").set("n1", mem(1024)).app("a", 0).release("a", 1, skiff.ReleaseDeploying, "web")
		w.s.Formations["a"] = skiff.Formation{App: "a", Quantity: map[string]int{"web": 2}, Sizes: map[string]string{"web": "2x"}}
		w.s.Now = t0.Add(2 * 60e9)
		p := w.plan()
		if len(p.Statuses) != 1 || !strings.Contains(p.Statuses[0].Release.StatusReason, "no node has the memory free for a 2x process") {
			t.Fatalf("statuses %+v", p.Statuses)
		}
	})
	t.Run("no node matches", func(t *testing.T) {
		w := newWorld("n1").app("a", 0).release("a", 1, skiff.ReleaseDeploying, "web")
		app := w.s.Apps["a"]
		app.Value.Placement = map[string]string{"region": "mars"}
		w.s.Apps["a"] = app
		w.s.Now = t0.Add(2 * 60e9)
		p := w.plan()
		if len(p.Statuses) != 1 || !strings.Contains(p.Statuses[0].Release.StatusReason, "labels region=mars") {
			t.Fatalf("statuses %+v", p.Statuses)
		}
	})
}
