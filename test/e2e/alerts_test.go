package e2e

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/metrics/webhooks"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// hookReceiver is a webhook endpoint in the root namespace, on the
// cluster's bridge, that checks each delivery's signature and keeps the
// events.
type hookReceiver struct {
	url    string
	mu     sync.Mutex
	events []skiff.Event
	bad    []string // deliveries whose signature did not check
}

func newHookReceiver(t *testing.T, c *cluster, secret string) *hookReceiver {
	l, err := net.Listen("tcp", net.JoinHostPort(c.net.gw.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	r := &hookReceiver{url: "http://" + l.Addr().String() + "/hook"}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		var ev skiff.Event
		if err := webhooks.Verify([]byte(secret), req.Header.Get(webhooks.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
			r.bad = append(r.bad, err.Error())
		} else if err := json.Unmarshal(body, &ev); err == nil {
			r.events = append(r.events, ev)
		}
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return r
}

// alerts are the alert events received so far, as "state kind subject".
func (r *hookReceiver) alerts() ([]skiff.Event, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []skiff.Event
	for _, ev := range r.events {
		if ev.Alert != nil {
			out = append(out, ev)
		}
	}
	return out, slices.Clone(r.bad)
}

// TestAlertsNodeDown: two apps run on an agent node whose host dies. The
// platform webhook receives one node_down alert naming both, signed, and
// no app_down alert of either app, although app_down rules cover them:
// the scheduler starts them on another node within its boot timeout.
func TestAlertsNodeDown(t *testing.T) {
	busOnly := []string{skiff.RoleBus}
	c := startCluster(t,
		nodeSpec{roles: append(slices.Clone(allRoles), skiff.RoleMetrics), extra: []string{"--alert-tick", "250ms", "--node-dead-after", "3s", "--boot-timeout", "10s"}},
		nodeSpec{roles: busOnly}, nodeSpec{roles: busOnly},
		nodeSpec{roles: []string{skiff.RoleAgent}, extra: []string{"--labels", "zone=far"}})
	n1, n4 := c.nodes[0], c.nodes[3]
	const secret = "whsec_e2e_0123456789"
	rcv := newHookReceiver(t, c, secret)
	n1.ok(t, "webhooks", "add", "--platform", rcv.url, "--events", "alert", "--secret", secret)
	n1.ok(t, "alerts", "add", "node_down")
	n1.ok(t, "alerts", "add", "app_down", "--platform", "--for", "1s")

	// Each app takes 5 s to boot: the replacements of the dead node's
	// instances are down well past app_down's --for, but back within the
	// boot timeout.
	apps := []string{"blog", "shop"}
	dir := app(t, "pyapp", map[string]string{"server.py": multiHostApp(t)["server.py"],
		"Procfile": "web: sleep ${BOOT_DELAY:-0}; exec python3 server.py\n"})
	var wg sync.WaitGroup
	for _, name := range apps {
		n1.ok(t, "apps", "create", name)
		n1.ok(t, "placement", "-a", name, "zone=far") // on n4, to begin with
		n1.ok(t, "config", "set", "-a", name, "BOOT_DELAY=5")
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			if r := n1.run(".", 2*time.Minute, "deploy", dir, "-a", name); r.code != 0 {
				t.Errorf("deploy %s: %d\n%s\n%s", name, r.code, r.out, r.err)
			}
			t.Logf("deployed %s in %s", name, time.Since(start).Round(time.Millisecond))
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, name := range apps {
		web, err := webUp(n1, name)
		if err != nil || len(web) != 1 || web["web.1"].Node != n4.name {
			t.Fatalf("%s's web processes: %+v, %v; want web.1 up on %s", name, web, err, n4.name)
		}
		n1.ok(t, "placement", "-a", name, "--clear") // free to move when n4 dies
	}

	killed := c.killHost(t, n4)
	poll(t, 30*time.Second, 100*time.Millisecond, "the node_down alert", func() bool {
		evs, _ := rcv.alerts()
		return len(evs) > 0
	})
	t.Logf("node_down alert received %s after the kill", time.Since(killed).Round(time.Millisecond))
	for _, app := range apps {
		poll(t, 30*time.Second, 250*time.Millisecond, app+" up again on "+n1.name, func() bool {
			web, err := webUp(n1, app)
			return err == nil && web["web.1"].Node == n1.name
		})
	}
	t.Logf("both apps up again on %s %s after the kill", n1.name, time.Since(killed).Round(time.Millisecond))
	// Past the boot timeout (the grace) after the death, and app_down's
	// --for, by a margin: an app_down alert, had there been one, would
	// have come by now.
	time.Sleep(time.Until(killed.Add(3*time.Second + 10*time.Second + time.Second + 2*time.Second)))

	evs, bad := rcv.alerts()
	if len(bad) > 0 {
		t.Fatalf("deliveries with a bad signature: %v", bad)
	}
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.Alert.State+" "+ev.Alert.Kind+" "+ev.App+ev.Node)
	}
	if len(evs) != 1 || evs[0].Type != skiff.EventAlertFiring || evs[0].Alert.Kind != skiff.AlertNodeDown || evs[0].Node != n4.name {
		t.Fatalf("alerts received: %v; want one node_down of %s", kinds, n4.name)
	}
	if got := strings.Join(evs[0].Alert.Apps, ","); got != "blog,shop" {
		t.Fatalf("node_down names %q, want blog,shop: %s", got, evs[0].Message)
	}
	t.Logf("alert: %s", evs[0].Message)
	out := n1.ok(t, "alerts", "--platform")
	if !strings.Contains(out, "FIRING") || !strings.Contains(out, "Node "+n4.name+" is down") {
		t.Fatalf("skiff alerts --platform:\n%s", out)
	}
	hooks := n1.ok(t, "webhooks", "--platform")
	if !strings.Contains(hooks, "alert.firing, 200") {
		t.Fatalf("skiff webhooks --platform does not show the delivery:\n%s", hooks)
	}
	events := n1.ok(t, "events", "-a", "shop", "--type", "node,alert")
	if !strings.Contains(events, skiff.EventNodeDead) {
		t.Fatalf("skiff events -a shop lacks node.dead:\n%s", events)
	}
}
