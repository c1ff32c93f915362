package scheduler

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/bus/bustest"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// cluster is a scheduler against a real bus, with fake nodes that beat
// and report every instance assigned to them up at once.
type cluster struct {
	t     *testing.T
	st    *store.Store
	mu    sync.Mutex
	quiet map[string]bool // nodes whose heartbeats stopped
}

func newCluster(t *testing.T, nodes ...string) *cluster {
	t.Helper()
	st, err := store.Open(context.Background(), bustest.Start(t), nil, store.Options{LockTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, st: st, quiet: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				c.mu.Lock()
				quiet := c.quiet[n]
				c.mu.Unlock()
				if !quiet {
					st.Nodes.Put(ctx, n, skiff.Node{Name: n, Roles: []string{skiff.RoleAgent}, Heartbeat: time.Now().UTC()})
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	// Every assignment is reported up by its node, unless the node is quiet.
	ch, err := st.Assignments.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for u := range ch {
			if u.Synced || u.Deleted {
				continue
			}
			a := u.Value
			st.Instances.Put(ctx, skiff.InstanceKey(a.App, a.ID), skiff.Instance{ID: a.ID, App: a.App, Proc: a.Proc, Index: a.Index,
				Release: a.Release, Node: a.Node, State: skiff.StateUp, Addr: "127.0.0.1:1"})
		}
	}()
	s, err := New(Config{Node: "s1", DeadAfter: 1500 * time.Millisecond, SuspectAfter: 500 * time.Millisecond}, st)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); s.Run(ctx) }()
	return c
}

func (c *cluster) silence(node string, quiet bool) {
	c.mu.Lock()
	c.quiet[node] = quiet
	c.mu.Unlock()
}

// deploy makes app a with web=2 at release v1.
func (c *cluster) deploy() {
	ctx := context.Background()
	if _, err := c.st.Apps.Create(ctx, "a", skiff.App{Name: "a"}); err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.st.Formations.Put(ctx, "a", skiff.Formation{App: "a", Quantity: map[string]int{"web": 2}}); err != nil {
		c.t.Fatal(err)
	}
	rel := skiff.Release{App: "a", Version: 1, Status: skiff.ReleasePending, Processes: map[string]string{"web": "./web"}}
	if _, err := c.st.Releases.Create(ctx, skiff.ReleaseKey("a", 1), rel); err != nil {
		c.t.Fatal(err)
	}
	c.await(10*time.Second, "the release deployed on two nodes", func(as []skiff.Assignment) bool {
		app, _, _ := c.st.Apps.Get(ctx, "a")
		return app.Current == 1 && len(as) == 2 && as[0].Node != as[1].Node
	})
}

func (c *cluster) assignments() []skiff.Assignment {
	as, err := c.st.Assignments.Values(context.Background(), "")
	if err != nil {
		c.t.Fatal(err)
	}
	return as
}

func (c *cluster) await(d time.Duration, what string, cond func([]skiff.Assignment) bool) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for !cond(c.assignments()) {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s; assignments: %+v", what, c.assignments())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func on(as []skiff.Assignment, node string) int {
	n := 0
	for _, a := range as {
		if a.Node == node {
			n++
		}
	}
	return n
}

// TestDeadNodeReplaced: a node silent past the grace period is declared
// dead in its record, its instances' reports are deleted (routers drop
// them) and they are started on the other nodes.
func TestDeadNodeReplaced(t *testing.T) {
	c := newCluster(t, "n1", "n2", "n3")
	c.deploy()
	victim := c.assignments()[0].Node
	c.silence(victim, true)
	silenced := time.Now()
	c.await(10*time.Second, "the instance replaced", func(as []skiff.Assignment) bool {
		return len(as) == 2 && on(as, victim) == 0 && as[0].Node != as[1].Node
	})
	t.Logf("replaced %s after the node fell silent", time.Since(silenced).Round(10*time.Millisecond))
	n, _, err := c.st.Nodes.Get(context.Background(), victim)
	if err != nil || n.State != skiff.NodeDead {
		t.Fatalf("node record %+v, %v: want it declared dead", n, err)
	}
	insts, _ := c.st.Instances.Values(context.Background(), "")
	for _, i := range insts {
		if i.Node == victim {
			t.Fatalf("the dead node's instance %s is still reported", i.ID)
		}
	}
}

// TestShortSilenceChangesNothing: a node silent for less than the grace
// period (a pause, a network blip) keeps its instances.
func TestShortSilenceChangesNothing(t *testing.T) {
	c := newCluster(t, "n1", "n2", "n3")
	c.deploy()
	before := c.assignments()
	c.silence(before[0].Node, true)
	time.Sleep(1000 * time.Millisecond)
	c.silence(before[0].Node, false)
	time.Sleep(1500 * time.Millisecond)
	after := c.assignments()
	if len(after) != 2 || after[0].ID != before[0].ID || after[1].ID != before[1].ID {
		t.Fatalf("assignments changed after a short silence:\nbefore %+v\nafter  %+v", before, after)
	}
}

// TestSilenceOfMostNodesHeldBack: when most nodes fall silent together,
// the scheduler waits (up to twice the grace period) rather than move
// everything at once.
func TestSilenceOfMostNodesHeldBack(t *testing.T) {
	c := newCluster(t, "n1", "n2", "n3")
	c.deploy()
	before := c.assignments()
	c.silence("n1", true)
	c.silence("n2", true)
	time.Sleep(2 * time.Second) // past the grace period, short of twice it
	if after := c.assignments(); len(after) != 2 || after[0].ID != before[0].ID || after[1].ID != before[1].ID {
		t.Fatalf("instances moved while most nodes were silent:\nbefore %+v\nafter  %+v", before, after)
	}
	c.await(10*time.Second, "the silent nodes' instances moved after twice the grace period", func(as []skiff.Assignment) bool {
		return len(as) == 2 && on(as, "n3") == 2
	})
}

// TestBlindLeaderDeclaresNoneDead: when no heartbeat at all reaches the
// leader for longer than the grace period (the bus is down), no node is
// declared dead, and when heartbeats come again each gets its full grace.
func TestBlindLeaderDeclaresNoneDead(t *testing.T) {
	c := newCluster(t, "n1", "n2", "n3")
	c.deploy()
	before := c.assignments()
	for _, n := range []string{"n1", "n2", "n3"} {
		c.silence(n, true)
	}
	time.Sleep(3500 * time.Millisecond) // past twice the grace period
	for _, n := range []string{"n1", "n2", "n3"} {
		c.silence(n, false)
	}
	time.Sleep(time.Second)
	if after := c.assignments(); len(after) != 2 || after[0].ID != before[0].ID || after[1].ID != before[1].ID {
		t.Fatalf("instances moved after the leader was blind:\nbefore %+v\nafter  %+v", before, after)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if rec, _, _ := c.st.Nodes.Get(context.Background(), n); rec.State == skiff.NodeDead {
			t.Fatalf("node %s declared dead", n)
		}
	}
}
