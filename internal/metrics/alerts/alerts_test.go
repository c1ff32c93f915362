package alerts

import (
	"context"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/bus/bustest"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
	"github.com/skiff-paas/skiff/internal/testkit"
)

// alertEvents reads the alert events emitted so far.
func alertEvents(t *testing.T, st *store.Store) []skiff.Event {
	t.Helper()
	var out []skiff.Event
	err := st.ReadEvents(context.Background(), store.EventQuery{}, func(ev skiff.Event) error {
		if ev.Alert != nil {
			out = append(out, ev)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The engine on a real bus: a node declared dead with an app on it raises
// one node_down alert event naming the app, and no app_down; the alert is
// kept in the alerts bucket; when the node is back, it resolves once.
func TestEngineNodeDown(t *testing.T) {
	ctx := context.Background()
	box, _ := secret.New(make([]byte, secret.KeySize))
	st, err := store.Open(ctx, bustest.Start(t), box, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []skiff.AlertRule{
		{ID: "nd", Kind: skiff.AlertNodeDown},
		{ID: "ad", Kind: skiff.AlertAppDown, For: skiff.Duration(100 * time.Millisecond)},
	} {
		if _, err := st.AlertRules.Create(ctx, r.Key(), r); err != nil {
			t.Fatal(err)
		}
	}
	st.Apps.Put(ctx, "shop", skiff.App{Name: "shop", Current: 1})
	st.Formations.Put(ctx, "shop", skiff.Formation{App: "shop", Quantity: map[string]int{"web": 1}})
	st.Nodes.Put(ctx, "n1", skiff.Node{Name: "n1"})
	died := time.Now().UTC()
	st.Nodes.Put(ctx, "n2", skiff.Node{Name: "n2", State: skiff.NodeDead, StateSince: died})
	st.Emit(skiff.Event{App: "shop", Type: skiff.EventNodeDead, Node: "n2", Time: died, Message: "Node n2 is dead"})

	runEngine(t, Config{Node: "m1", Tick: 50 * time.Millisecond, Grace: time.Minute}, st)

	testkit.Eventually(t, 10*time.Second, "the node_down alert", func() bool { return len(alertEvents(t, st)) > 0 })
	time.Sleep(500 * time.Millisecond) // app_down's For, many times over
	evs := alertEvents(t, st)
	if len(evs) != 1 || evs[0].Alert.Kind != skiff.AlertNodeDown || evs[0].App != "" || len(evs[0].Alert.Apps) != 1 || evs[0].Alert.Apps[0] != "shop" {
		t.Fatalf("alert events %+v, want one node_down naming shop", evs)
	}
	a, _, err := st.Alerts.Get(ctx, "_platform.nd.node-n2")
	if err != nil || a.State != skiff.AlertFiring {
		t.Fatalf("stored alert %+v, %v", a, err)
	}
	st.Nodes.Put(ctx, "n2", skiff.Node{Name: "n2"})
	st.Instances.Put(ctx, "shop.x", skiff.Instance{ID: "x", App: "shop", Proc: "web", Release: 1, Node: "n1", State: skiff.StateUp})
	testkit.Eventually(t, 10*time.Second, "the resolution", func() bool { return len(alertEvents(t, st)) == 2 })
	if ev := alertEvents(t, st)[1]; ev.Type != skiff.EventAlertResolved || ev.Alert.Kind != skiff.AlertNodeDown {
		t.Fatalf("second alert event %+v", ev)
	}
}

func TestSamples(t *testing.T) {
	now := time.Now()
	s := NewSamples(time.Hour)
	s.now = func() time.Time { return now }
	h := func(fast, slow int64) skiff.Histogram {
		var h skiff.Histogram
		h.Counts[2], h.Counts[12] = fast, slow // 5 ms, 10 s
		return h
	}
	s.Add(skiff.RouterSample{App: "shop", Node: "r1", Time: now.Add(-30 * time.Minute), Requests: skiff.StatusCounts{0, 0, 0, 0, 100}, Latency: h(0, 100)})
	s.Add(skiff.RouterSample{App: "shop", Node: "r1", Time: now.Add(-time.Minute), Requests: skiff.StatusCounts{0, 90, 0, 0, 10}, Latency: h(100, 0)})
	s.Add(skiff.RouterSample{App: "shop", Node: "r1", Time: now.Add(-time.Minute), Requests: skiff.StatusCounts{0, 90, 0, 0, 10}, Latency: h(100, 0)}) // again
	if rate, n := s.ErrorRate("shop", 5*time.Minute); rate != 0.1 || n != 100 {
		t.Fatalf("ErrorRate over 5m = %v, %d; want 0.1 of 100", rate, n)
	}
	if rate, n := s.ErrorRate("shop", time.Hour); rate != 110.0/200 || n != 200 {
		t.Fatalf("ErrorRate over 1h = %v, %d", rate, n)
	}
	if p99, n := s.P99("shop", 5*time.Minute); p99 > 5 || n != 100 {
		t.Fatalf("P99 over 5m = %vms of %d", p99, n)
	}
	if p99, _ := s.P99("shop", time.Hour); p99 < 5000 {
		t.Fatalf("P99 over 1h = %vms, want the slow half's", p99)
	}
	if _, n := s.ErrorRate("blog", time.Hour); n != 0 {
		t.Fatal("an app without samples has requests")
	}
}

// The leading engine keeps its lease while it has nothing to write: no
// rule, no alert, several lease lifetimes long.
func TestEngineKeepsLeaseIdle(t *testing.T) {
	ctx := context.Background()
	box, _ := secret.New(make([]byte, secret.KeySize))
	st, err := store.Open(ctx, bustest.Start(t), box, store.Options{LockTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, Config{Node: "m1", Tick: 50 * time.Millisecond}, st)
	holder := func() string {
		h, err := st.LeaseHolder(ctx, LeaseName)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	testkit.Eventually(t, 10*time.Second, "the lease taken", func() bool { return holder() == "m1" })
	for range 6 {
		time.Sleep(500 * time.Millisecond) // the lease's TTL is 1 s
		if h := holder(); h != "m1" {
			t.Fatalf("lease held by %q while leading idle, want m1", h)
		}
	}
}

// Follow starts from the samples already in the METRICS stream, and takes
// those published after.
func TestSamplesFollow(t *testing.T) {
	ctx := context.Background()
	box, _ := secret.New(make([]byte, secret.KeySize))
	st, err := store.Open(ctx, bustest.Start(t), box, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sample := func(node string) skiff.RouterSample {
		return skiff.RouterSample{App: "shop", Node: node, Time: time.Now().Add(-time.Minute), Requests: skiff.StatusCounts{0, 90, 0, 0, 10}}
	}
	if err := st.RecordRouterSample(ctx, sample("r1")); err != nil {
		t.Fatal(err)
	}
	s := NewSamples(time.Hour)
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Follow(fctx, st) }()
	defer func() { cancel(); <-done }()
	testkit.Eventually(t, 10*time.Second, "the sample stored before", func() bool {
		_, n := s.ErrorRate("shop", 5*time.Minute)
		return n == 100
	})
	if err := st.RecordRouterSample(ctx, sample("r2")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the sample published after", func() bool {
		_, n := s.ErrorRate("shop", 5*time.Minute)
		return n == 200
	})
}

// runEngine runs an engine until the test ends.
func runEngine(t *testing.T, cfg Config, st *store.Store) {
	t.Helper()
	e, err := New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}
