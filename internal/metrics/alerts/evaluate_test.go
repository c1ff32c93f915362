package alerts

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// world is a platform to evaluate rules on: apps with a web formation,
// their instances and nodes.
type world struct {
	snap Snapshot
}

func newWorld(rules ...skiff.AlertRule) *world {
	w := &world{snap: Snapshot{Now: t0, Rules: rules, Apps: map[string]skiff.App{}, Formations: map[string]skiff.Formation{},
		Alerts: map[string]skiff.Alert{}, Grace: time.Minute, Repeat: time.Hour, Keep: 24 * time.Hour}}
	return w
}

// app adds an app running release 1 with web=n, its instances up on the
// nodes given.
func (w *world) app(name string, nodes ...string) {
	w.snap.Apps[name] = skiff.App{Name: name, Current: 1}
	w.snap.Formations[name] = skiff.Formation{App: name, Quantity: map[string]int{"web": len(nodes)}}
	for i, n := range nodes {
		w.snap.Instances = append(w.snap.Instances, skiff.Instance{ID: name + n, App: name, Proc: "web", Index: i + 1, Release: 1,
			Node: n, State: skiff.StateUp})
	}
}

// kill declares node dead at at, as the scheduler does: its instances'
// records go, and each app that had one gets a node.dead event.
func (w *world) kill(node string, at time.Time) {
	apps := map[string]bool{}
	kept := w.snap.Instances[:0]
	for _, i := range w.snap.Instances {
		if i.Node == node {
			apps[i.App] = true
			continue
		}
		kept = append(kept, i)
	}
	w.snap.Instances = kept
	for i, n := range w.snap.Nodes {
		if n.Name == node {
			w.snap.Nodes[i].State, w.snap.Nodes[i].StateSince = skiff.NodeDead, at
		}
	}
	for _, app := range sortedKeys(apps) {
		w.snap.Events = append(w.snap.Events, skiff.Event{Time: at, App: app, Type: skiff.EventNodeDead, Node: node})
	}
}

// start puts an up web instance of app on node.
func (w *world) start(app, node string) {
	w.snap.Instances = append(w.snap.Instances, skiff.Instance{ID: app + node + "new", App: app, Proc: "web", Index: 1, Release: 1,
		Node: node, State: skiff.StateUp})
}

// at evaluates at t and applies the outcome, as the engine does; it
// returns the notifications.
func (w *world) at(t time.Time) []skiff.Event {
	w.snap.Now = t
	out := Evaluate(w.snap)
	for _, a := range out.Put {
		w.snap.Alerts[a.Key()] = a
	}
	for _, k := range out.Delete {
		delete(w.snap.Alerts, k)
	}
	return out.Notify
}

func rule(id, app, kind string, mod ...func(*skiff.AlertRule)) skiff.AlertRule {
	r, err := skiff.AlertRuleRequest{Kind: kind}.Rule(app)
	if err != nil {
		panic(err)
	}
	r.ID = id
	for _, m := range mod {
		m(&r)
	}
	return r
}

func forD(d time.Duration) func(*skiff.AlertRule) {
	return func(r *skiff.AlertRule) { r.For = skiff.Duration(d) }
}

// summary is notifications as "firing app_down shop" lines.
func summary(evs []skiff.Event) []string {
	var out []string
	for _, ev := range evs {
		subject := ev.App
		if ev.Node != "" {
			subject = "node " + ev.Node
		}
		out = append(out, ev.Alert.State+" "+ev.Alert.Kind+" "+subject)
	}
	sort.Strings(out)
	return out
}

func expect(t *testing.T, when string, got []skiff.Event, want ...string) {
	t.Helper()
	if g, w := strings.Join(summary(got), "; "), strings.Join(want, "; "); g != w {
		t.Fatalf("%s: notified [%s], want [%s]", when, g, w)
	}
}

func TestAppDownFiresAfterForAndResolvesOnce(t *testing.T) {
	w := newWorld(rule("r1", "", skiff.AlertAppDown, forD(30*time.Second)))
	w.snap.Nodes = []skiff.Node{{Name: "n1"}}
	w.app("shop", "n1")
	expect(t, "up", w.at(t0))
	w.snap.Instances[0].State = skiff.StateCrashed
	expect(t, "down, just now", w.at(t0.Add(time.Second)))
	if a := w.snap.Alerts["_platform.r1.shop"]; a.State != skiff.AlertPending {
		t.Fatalf("alert %+v, want pending", a)
	}
	expect(t, "down 29s", w.at(t0.Add(30*time.Second)))
	expect(t, "down 30s", w.at(t0.Add(31*time.Second)), "firing app_down shop")
	expect(t, "still down", w.at(t0.Add(time.Minute)))
	expect(t, "down an hour later: told again", w.at(t0.Add(31*time.Second+time.Hour)), "firing app_down shop")
	expect(t, "and not again at once", w.at(t0.Add(32*time.Second+time.Hour)))
	w.snap.Instances[0].State = skiff.StateUp
	notes := w.at(t0.Add(2 * time.Hour))
	expect(t, "up again", notes, "resolved app_down shop")
	if !strings.HasPrefix(notes[0].Message, "Resolved after ") {
		t.Fatalf("resolution says %q", notes[0].Message)
	}
	expect(t, "resolved, later", w.at(t0.Add(3*time.Hour)))
	w.at(t0.Add(2*time.Hour + 24*time.Hour))
	if len(w.snap.Alerts) != 0 {
		t.Fatalf("resolved alerts kept past Keep: %v", w.snap.Alerts)
	}
}

func TestAppDownPendingThatRecoversTellsNobody(t *testing.T) {
	w := newWorld(rule("r1", "shop", skiff.AlertAppDown, forD(30*time.Second)))
	w.app("shop", "n1")
	w.snap.Instances[0].State = skiff.StateStarting
	expect(t, "starting", w.at(t0))
	w.snap.Instances[0].State = skiff.StateUp
	expect(t, "up", w.at(t0.Add(10*time.Second)))
	if len(w.snap.Alerts) != 0 {
		t.Fatalf("pending alert kept: %v", w.snap.Alerts)
	}
}

func TestAppDownIgnoresAppsNotRunning(t *testing.T) {
	w := newWorld(rule("r1", "", skiff.AlertAppDown, forD(time.Second)))
	w.snap.Apps["new"] = skiff.App{Name: "new"} // no release yet
	w.snap.Formations["new"] = skiff.Formation{App: "new", Quantity: map[string]int{"web": 1}}
	w.snap.Apps["worker"] = skiff.App{Name: "worker", Current: 1} // scaled to web=0
	w.snap.Formations["worker"] = skiff.Formation{App: "worker", Quantity: map[string]int{"web": 0, "worker": 1}}
	w.snap.Apps["old"] = skiff.App{Name: "old", Current: 2} // only an old release's instance is up
	w.snap.Formations["old"] = skiff.Formation{App: "old", Quantity: map[string]int{"web": 1}}
	w.snap.Instances = []skiff.Instance{{App: "old", Proc: "web", Release: 1, State: skiff.StateUp}}
	w.at(t0)
	expect(t, "later", w.at(t0.Add(time.Minute)), "firing app_down old")
}

// The dependency: a node dies with two apps on it. One node_down alert
// names both; neither raises app_down while the scheduler replaces its
// instances; the one that comes back up never alerts, and the one still
// down after the grace period does.
func TestNodeDownHoldsBackItsAppsAlerts(t *testing.T) {
	w := newWorld(rule("nd", "", skiff.AlertNodeDown), rule("ad", "", skiff.AlertAppDown, forD(10*time.Second)))
	w.snap.Nodes = []skiff.Node{{Name: "n1"}, {Name: "n2"}}
	w.app("shop", "n2")
	w.app("blog", "n2")
	w.app("wiki", "n1", "n2")
	expect(t, "all up", w.at(t0))

	dead := t0.Add(5 * time.Second)
	w.kill("n2", dead)
	expect(t, "just declared", w.at(dead))
	notes := w.at(dead.Add(3 * time.Second))
	expect(t, "settled", notes, "firing node_down node n2")
	if got := strings.Join(notes[0].Alert.Apps, ","); got != "blog,shop,wiki" {
		t.Fatalf("node_down names apps %s, want blog,shop,wiki", got)
	}
	if !strings.Contains(notes[0].Message, "blog, shop, wiki") || notes[0].App != "" {
		t.Fatalf("node_down event %+v", notes[0])
	}
	// shop and blog have no web process up, longer than For, but within
	// the grace period: held back. wiki still has one.
	expect(t, "within grace", w.at(dead.Add(30*time.Second)))
	for _, app := range []string{"shop", "blog"} {
		if a := w.snap.Alerts["_platform.ad."+app]; a.State != skiff.AlertPending || !strings.Contains(a.Message, "node n2 died") {
			t.Fatalf("%s: alert %+v, want pending, held by n2", app, a)
		}
	}
	w.start("shop", "n1") // replaced in time
	expect(t, "shop replaced", w.at(dead.Add(50*time.Second)))
	expect(t, "grace over: blog is still down", w.at(dead.Add(61*time.Second)), "firing app_down blog")
	// The node comes back: node_down resolves; blog is still down.
	w.snap.Nodes[1] = skiff.Node{Name: "n2"}
	expect(t, "node back", w.at(dead.Add(2*time.Minute)), "resolved node_down node n2")
}

// A node that died long ago (its record still says dead) holds nothing
// back: a later outage of an app that ran there alerts as usual.
func TestOldDeathHoldsNothing(t *testing.T) {
	w := newWorld(rule("ad", "", skiff.AlertAppDown, forD(10*time.Second)))
	w.snap.Nodes = []skiff.Node{{Name: "n1"}, {Name: "n2"}}
	w.app("shop", "n2")
	w.kill("n2", t0)
	w.start("shop", "n1")
	w.at(t0.Add(time.Hour))
	w.snap.Instances[0].State = skiff.StateCrashed
	w.at(t0.Add(time.Hour + time.Second))
	expect(t, "down", w.at(t0.Add(time.Hour+12*time.Second)), "firing app_down shop")
}

func TestDiskCrashLoopAndBackup(t *testing.T) {
	w := newWorld(rule("disk", "", skiff.AlertDisk), rule("cl", "shop", skiff.AlertCrashLoop), rule("bk", "", skiff.AlertBackupFailed))
	w.snap.Nodes = []skiff.Node{
		{Name: "n1", DiskTotal: 100 << 30, DiskUsed: 39 << 30},
		{Name: "n2", DiskTotal: 100 << 30, DiskUsed: 45 << 30},
		{Name: "n3", DiskTotal: 100 << 30, DiskUsed: 90 << 30, State: skiff.NodeDead}, // node_down's business
	}
	w.app("shop", "n1")
	w.app("blog", "n1")
	w.snap.Instances[0].CrashLoop = true
	w.snap.Events = []skiff.Event{
		{Time: t0.Add(-time.Hour), App: "shop", Type: skiff.EventBackupFailed, Message: "pg_dump: connection refused"},
		{Time: t0.Add(-2 * time.Hour), App: "blog", Type: skiff.EventBackupFailed},
		{Time: t0.Add(-time.Hour), App: "blog", Type: skiff.EventBackupCaptured},
	}
	notes := w.at(t0)
	expect(t, "first look", notes, "firing backup_failed shop", "firing crash_loop shop", "firing disk node n2")
	if a := w.snap.Alerts["_platform.bk.shop"]; !a.Since.Equal(t0.Add(-time.Hour)) || !strings.Contains(a.Message, "connection refused") {
		t.Fatalf("backup alert %+v: want it since the failure, with its message", a)
	}
	w.snap.Instances[0].CrashLoop = false
	w.snap.Nodes[1].DiskUsed = 30 << 30
	w.snap.Events = append(w.snap.Events, skiff.Event{Time: t0, App: "shop", Type: skiff.EventBackupVerified})
	expect(t, "all well", w.at(t0.Add(time.Minute)), "resolved backup_failed shop", "resolved crash_loop shop", "resolved disk node n2")
}

// series is router numbers by app, for error_rate and p99 rules.
type series map[string][3]float64 // rate, p99 ms, requests

func (s series) ErrorRate(app string, _ time.Duration) (float64, int64) {
	return s[app][0], int64(s[app][2])
}
func (s series) P99(app string, _ time.Duration) (float64, int64) { return s[app][1], int64(s[app][2]) }

func TestErrorRateAndP99(t *testing.T) {
	w := newWorld(rule("er", "", skiff.AlertErrorRate), rule("p", "shop", skiff.AlertP99, func(r *skiff.AlertRule) { r.Threshold = 500 }))
	w.app("shop", "n1")
	w.app("blog", "n1")
	w.app("quiet", "n1")
	w.snap.Series = series{"shop": {0.10, 800, 1000}, "blog": {0.01, 2000, 1000}, "quiet": {1, 5000, MinRequests - 1}}
	expect(t, "first look", w.at(t0), "firing error_rate shop", "firing p99 shop")
	if msg := w.snap.Alerts["_platform.er.shop"].Message; !strings.Contains(msg, "10.0% of 1000 answers") {
		t.Fatalf("error rate message %q", msg)
	}
	w.snap.Series = series{"shop": {0.01, 100, 1000}}
	expect(t, "better", w.at(t0.Add(time.Minute)), "resolved error_rate shop", "resolved p99 shop")
}

func TestRemovedRuleDropsItsAlertsUntold(t *testing.T) {
	w := newWorld(rule("cl", "shop", skiff.AlertCrashLoop))
	w.app("shop", "n1")
	w.snap.Instances[0].CrashLoop = true
	expect(t, "loop", w.at(t0), "firing crash_loop shop")
	w.snap.Rules = nil
	expect(t, "rule removed", w.at(t0.Add(time.Second)))
	if len(w.snap.Alerts) != 0 {
		t.Fatalf("alerts of a removed rule kept: %v", w.snap.Alerts)
	}
}
