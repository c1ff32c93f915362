package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// TestDeclaredDeadNodeKillsItsInstances: when the scheduler declared the
// node dead (its record says so, its instances' records are gone and
// their assignments deleted), the agent kills its instances at once
// without reporting them again, and comes back as a new incarnation.
func TestDeclaredDeadNodeKillsItsInstances(t *testing.T) {
	// A long drain delay: a kill must not wait for it.
	h := newHarness(t, Config{DrainDelay: 30 * time.Second, StopGrace: 30 * time.Second, Heartbeat: 100 * time.Millisecond})
	ctx := context.Background()
	h.assign("f1", "web", "exec python3 -u server.py")
	var inst skiff.Instance
	eventually(t, 15*time.Second, func() bool { inst, _ = h.instance("f1"); return inst.State == skiff.StateUp })
	before, rev, err := h.st.Nodes.Get(ctx, "n1")
	if err != nil || before.Incarnation == "" || before.InstanceMemory != 512<<20 || before.Instances != 1 {
		t.Fatalf("node record %+v, %v", before, err)
	}

	// What the scheduler's leader does, in its order.
	dead := before
	dead.State, dead.StateSince = skiff.NodeDead, time.Now().UTC()
	for {
		if _, err = h.st.Nodes.UpdateAt(ctx, "n1", dead, rev); err == nil {
			break
		}
		dead, rev, _ = h.st.Nodes.Get(ctx, "n1") // a heartbeat came in between
		dead.State = skiff.NodeDead
	}
	declared := time.Now()
	h.st.Instances.Delete(ctx, skiff.InstanceKey("app", "f1"))
	h.st.Assignments.Delete(ctx, skiff.AssignmentKey("n1", "app", "f1"))

	eventually(t, 5*time.Second, func() bool { _, err := get("http://" + inst.Addr + "/"); return err != nil })
	t.Logf("killed %s after the node was declared dead", time.Since(declared).Round(time.Millisecond))
	if time.Since(declared) > 5*time.Second {
		t.Fatal("the instance was stopped gracefully, not killed")
	}
	var after skiff.Node
	eventually(t, 5*time.Second, func() bool {
		after, _, _ = h.st.Nodes.Get(ctx, "n1")
		return after.State == "" && after.Incarnation != before.Incarnation
	})
	time.Sleep(300 * time.Millisecond)
	if _, ok := h.instance("f1"); ok {
		t.Fatal("the killed instance's record was written again")
	}
	if logs := h.logs("web.1"); !strings.Contains(logs, "replaced on another node") || strings.Contains(logs, "SIGTERM") {
		t.Fatalf("logs:\n%s", logs)
	}

	// The new incarnation runs what is assigned to it.
	h.assign("f2", "web", "exec python3 -u server.py")
	eventually(t, 15*time.Second, func() bool { i, _ := h.instance("f2"); return i.State == skiff.StateUp })
}

// TestInstanceRecordTakenAway: a supervisor whose record was
// deleted by someone else stops its process, and the heartbeat, checking
// at once, finds the node declared dead.
func TestInstanceRecordTakenAway(t *testing.T) {
	h := newHarness(t, Config{UsageInterval: 100 * time.Millisecond, Heartbeat: time.Hour})
	ctx := context.Background()
	h.assign("g1", "worker", "sleep 1000")
	var first skiff.Instance
	eventually(t, 15*time.Second, func() bool { first, _ = h.instance("g1"); return first.State == skiff.StateUp })
	n, rev, _ := h.st.Nodes.Get(ctx, "n1")
	incarnation := n.Incarnation
	n.State = skiff.NodeDead
	if _, err := h.st.Nodes.UpdateAt(ctx, "n1", n, rev); err != nil {
		t.Fatal(err)
	}
	h.st.Instances.Delete(ctx, skiff.InstanceKey("app", "g1"))
	// The next usage report finds the record gone; with hour-long
	// heartbeats only that can bring the node back in time.
	eventually(t, 5*time.Second, func() bool {
		n, _, _ := h.st.Nodes.Get(ctx, "n1")
		return n.State == "" && n.Incarnation != incarnation
	})
	// The assignment is still there (the scheduler had not deleted it
	// yet): the new incarnation starts it afresh, with a new process.
	eventually(t, 15*time.Second, func() bool {
		i, _ := h.instance("g1")
		return i.State == skiff.StateUp && i.PID != first.PID
	})
	if processStart(first.PID) != "" {
		t.Fatalf("the fenced process %d still runs", first.PID)
	}
}
