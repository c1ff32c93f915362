package alerts

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Series reads an app's router numbers over the last window: the share
// of its answers that were 5xx (0 to 1) and the 99th percentile of its
// response times in milliseconds, each with the number of requests it
// rests on.
type Series interface {
	ErrorRate(app string, window time.Duration) (rate float64, requests int64)
	P99(app string, window time.Duration) (ms float64, requests int64)
}

// MinRequests is how many requests a window needs before its error rate
// or p99 may raise an alert: two errors out of three requests are no
// outage.
const MinRequests = 20

// settle is how long after a node's death its node_down alert waits
// before it fires, so that it names every app the scheduler reported.
const settle = 2 * time.Second

// Snapshot is what one evaluation looks at.
type Snapshot struct {
	Now   time.Time
	Rules []skiff.AlertRule
	// Apps are the apps by name; Formations their formations.
	Apps       map[string]skiff.App
	Formations map[string]skiff.Formation
	Nodes      []skiff.Node
	Instances  []skiff.Instance
	// Events are the recent events the rules read (node.dead, backup.*),
	// oldest first.
	Events []skiff.Event
	// Series answers error_rate and p99 rules; nil: they never fire.
	Series Series
	// Alerts are the alerts so far, by key.
	Alerts map[string]skiff.Alert
	// Grace is how long after a node is declared dead the apps that ran on
	// it raise no app_down, error_rate or p99 alert of their own: the
	// scheduler's time to start them elsewhere (its boot timeout).
	Grace time.Duration
	// Repeat is how often a firing alert is told again.
	Repeat time.Duration
	// Keep is how long a resolved alert stays listed.
	Keep time.Duration
}

// Outcome is what an evaluation decided: the alerts to write and delete,
// and the notifications (alert events) to send.
type Outcome struct {
	Put    []skiff.Alert
	Delete []string
	Notify []skiff.Event
}

// condition is a rule's condition holding for one subject now.
type condition struct {
	alert skiff.Alert // Rule, Kind, App, Node, Message, Apps
	since time.Time   // when it began, if known; else when first seen
	// hold keeps a pending alert from firing (its subject depends on a
	// node that died within the grace period).
	hold bool
	wait time.Duration // how long it must hold before firing
}

// Evaluate decides, from a snapshot, which alerts are pending, fire,
// repeat and resolve. It is a pure function of its snapshot.
func Evaluate(s Snapshot) Outcome {
	deps := nodeDependencies(s)
	conds := map[string]condition{}
	for _, r := range s.Rules {
		for _, c := range conditions(s, r, deps) {
			c.alert.Rule, c.alert.Kind = r.Key(), r.Kind
			if c.wait == 0 {
				c.wait = time.Duration(r.For)
			}
			conds[c.alert.Key()] = c
		}
	}
	var out Outcome
	for key, c := range conds {
		prev, had := s.Alerts[key]
		a := c.alert
		switch {
		case !had || prev.State == skiff.AlertResolved:
			a.State, a.Since = skiff.AlertPending, s.Now
			if !c.since.IsZero() && c.since.Before(s.Now) {
				a.Since = c.since
			}
		default:
			a.State, a.Since, a.FiredAt, a.Notified = prev.State, prev.Since, prev.FiredAt, prev.Notified
		}
		switch {
		case a.State == skiff.AlertPending && !c.hold && s.Now.Sub(a.Since) >= c.wait:
			a.State, a.FiredAt, a.Notified = skiff.AlertFiring, s.Now, s.Now
			out.Notify = append(out.Notify, notice(a, a.Message))
		case a.State == skiff.AlertFiring && s.Repeat > 0 && s.Now.Sub(a.Notified) >= s.Repeat:
			a.Notified = s.Now
			out.Notify = append(out.Notify, notice(a, "Still firing since "+a.FiredAt.UTC().Format("15:04 MST")+": "+a.Message))
		}
		if !had || !sameAlert(prev, a) {
			out.Put = append(out.Put, a)
		}
	}
	rules := map[string]bool{}
	for _, r := range s.Rules {
		rules[r.Key()] = true
	}
	for key, prev := range s.Alerts {
		if _, ok := conds[key]; ok {
			continue
		}
		if !rules[prev.Rule] { // the rule was removed: so are its alerts, untold
			out.Delete = append(out.Delete, key)
			continue
		}
		switch prev.State {
		case skiff.AlertPending:
			out.Delete = append(out.Delete, key)
		case skiff.AlertFiring:
			a := prev
			a.State, a.ResolvedAt, a.Notified = skiff.AlertResolved, s.Now, s.Now
			a.Message = fmt.Sprintf("Resolved after %s: %s", roundDuration(s.Now.Sub(prev.FiredAt)), prev.Message)
			out.Put = append(out.Put, a)
			out.Notify = append(out.Notify, notice(a, a.Message))
		case skiff.AlertResolved:
			if s.Keep > 0 && s.Now.Sub(prev.ResolvedAt) >= s.Keep {
				out.Delete = append(out.Delete, key)
			}
		}
	}
	sort.Slice(out.Put, func(i, j int) bool { return out.Put[i].Key() < out.Put[j].Key() })
	sort.Strings(out.Delete)
	sort.Slice(out.Notify, func(i, j int) bool { return out.Notify[i].Message < out.Notify[j].Message })
	return out
}

func sameAlert(a, b skiff.Alert) bool {
	return a.State == b.State && a.Message == b.Message && a.Since.Equal(b.Since) && a.FiredAt.Equal(b.FiredAt) &&
		a.Notified.Equal(b.Notified) && strings.Join(a.Apps, ",") == strings.Join(b.Apps, ",")
}

// notice is the alert event that tells of a.
func notice(a skiff.Alert, msg string) skiff.Event {
	typ := skiff.EventAlertFiring
	if a.State == skiff.AlertResolved {
		typ = skiff.EventAlertResolved
	}
	return skiff.Event{App: a.App, Type: typ, Component: "alerts", Node: a.Node, Message: msg,
		Alert: &skiff.AlertNotice{Rule: a.Rule, Kind: a.Kind, State: a.State, Node: a.Node, Apps: a.Apps, Since: a.Since}}
}

// deadNode is a node declared dead, with the apps that had instances on
// it as the scheduler's node.dead events name them.
type deadNode struct {
	node skiff.Node
	apps []string
}

// dependencies says which apps depend on a node that died within the
// grace period, and lists the dead nodes.
type dependencies struct {
	dead  []deadNode
	held  map[string]string // app -> the dead node it waits on
	grace time.Duration
}

func nodeDependencies(s Snapshot) dependencies {
	d := dependencies{held: map[string]string{}}
	for _, n := range s.Nodes {
		if n.State != skiff.NodeDead {
			continue
		}
		apps := map[string]bool{}
		for _, ev := range s.Events {
			// Events of an earlier death of the node are not this one's.
			if ev.Type == skiff.EventNodeDead && ev.Node == n.Name && ev.App != "" && !ev.Time.Before(n.StateSince.Add(-time.Minute)) {
				apps[ev.App] = true
			}
		}
		dn := deadNode{node: n, apps: sortedKeys(apps)}
		d.dead = append(d.dead, dn)
		if s.Now.Sub(n.StateSince) < s.Grace {
			for _, app := range dn.apps {
				d.held[app] = n.Name
			}
		}
	}
	sort.Slice(d.dead, func(i, j int) bool { return d.dead[i].node.Name < d.dead[j].node.Name })
	return d
}

// appsOf are the apps rule r covers: its own, or every app that runs a
// release.
func appsOf(s Snapshot, r skiff.AlertRule) []string {
	if r.App != "" {
		if _, ok := s.Apps[r.App]; ok {
			return []string{r.App}
		}
		return nil
	}
	var out []string
	for name, app := range s.Apps {
		if app.Current > 0 {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// conditions are the subjects for which r's condition holds now.
func conditions(s Snapshot, r skiff.AlertRule, deps dependencies) []condition {
	var out []condition
	appCond := func(app, msg string) condition {
		return condition{alert: skiff.Alert{App: app, Message: msg}}
	}
	switch r.Kind {
	case skiff.AlertNodeDown:
		for _, dn := range deps.dead {
			msg := fmt.Sprintf("Node %s is down: declared dead at %s", dn.node.Name, dn.node.StateSince.UTC().Format("15:04:05 MST"))
			if len(dn.apps) > 0 {
				msg += fmt.Sprintf("; %s had instances on it: %s, being started on other nodes", plural(len(dn.apps), "app", "apps"), strings.Join(dn.apps, ", "))
			}
			out = append(out, condition{alert: skiff.Alert{Node: dn.node.Name, Apps: dn.apps, Message: msg},
				since: dn.node.StateSince, wait: max(time.Duration(r.For), settle)})
		}
	case skiff.AlertDisk:
		for _, n := range s.Nodes {
			if n.State == skiff.NodeDead || n.DiskTotal <= 0 {
				continue
			}
			used := float64(n.DiskUsed) / float64(n.DiskTotal) * 100
			if used >= r.Threshold {
				out = append(out, condition{alert: skiff.Alert{Node: n.Name,
					Message: fmt.Sprintf("Node %s's data disk is %.1f%% full, over %g%%: %s of %s used", n.Name, used, r.Threshold,
						skiff.HumanBytes(n.DiskUsed), skiff.HumanBytes(n.DiskTotal))}})
			}
		}
	case skiff.AlertAppDown:
		up, wants := map[string]int{}, map[string]int{}
		for _, i := range s.Instances {
			if i.Proc == "web" && i.State == skiff.StateUp && i.Release == s.Apps[i.App].Current {
				up[i.App]++
			}
		}
		for _, app := range appsOf(s, r) {
			wants[app] = s.Formations[app].Count("web")
			if s.Apps[app].Current == 0 || wants[app] == 0 || up[app] > 0 {
				continue
			}
			c := appCond(app, fmt.Sprintf("%s is down: no web process up of the %d its formation wants", app, wants[app]))
			if node, ok := deps.held[app]; ok {
				c.hold = true
				c.alert.Message += fmt.Sprintf(" (node %s died: waiting for its instances to start elsewhere)", node)
			}
			out = append(out, c)
		}
	case skiff.AlertCrashLoop:
		looping := map[string][]string{}
		for _, i := range s.Instances {
			if i.CrashLoop {
				looping[i.App] = append(looping[i.App], i.Name())
			}
		}
		for _, app := range appsOf(s, r) {
			if names := looping[app]; len(names) > 0 {
				sort.Strings(names)
				out = append(out, appCond(app, fmt.Sprintf("%s is in a crash loop: %s exit soon after each start", app, strings.Join(names, ", "))))
			}
		}
	case skiff.AlertBackupFailed:
		last := map[string]skiff.Event{}
		for _, ev := range s.Events {
			switch ev.Type {
			case skiff.EventBackupFailed, skiff.EventBackupVerifyFail, skiff.EventBackupCaptured, skiff.EventBackupVerified:
				last[ev.App] = ev
			}
		}
		for _, app := range appsOf(s, r) {
			ev, ok := last[app]
			if ok && (ev.Type == skiff.EventBackupFailed || ev.Type == skiff.EventBackupVerifyFail) {
				c := appCond(app, fmt.Sprintf("Backup of %s failed: %s", app, ev.Message))
				c.since = ev.Time
				out = append(out, c)
			}
		}
	case skiff.AlertErrorRate, skiff.AlertP99:
		if s.Series == nil {
			return nil
		}
		window := time.Duration(r.Window)
		for _, app := range appsOf(s, r) {
			var msg string
			if r.Kind == skiff.AlertErrorRate {
				rate, n := s.Series.ErrorRate(app, window)
				if n < MinRequests || rate*100 < r.Threshold {
					continue
				}
				msg = fmt.Sprintf("%s: %.1f%% of %d answers were 5xx over the last %s, over %g%%", app, rate*100, n, window, r.Threshold)
			} else {
				p99, n := s.Series.P99(app, window)
				if n < MinRequests || p99 < r.Threshold {
					continue
				}
				msg = fmt.Sprintf("%s: p99 response time %.0fms over the last %s, over %gms", app, p99, window, r.Threshold)
			}
			c := appCond(app, msg)
			_, c.hold = deps.held[app]
			out = append(out, c)
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// roundDuration shows d to the second, or to the minute past an hour.
func roundDuration(d time.Duration) time.Duration {
	if d > time.Hour {
		return d.Round(time.Minute)
	}
	return time.Duration(math.Max(0, float64(d.Round(time.Second))))
}
