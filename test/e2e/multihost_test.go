package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// multiHostApp is the Python test app listening on every address of its
// host rather than on loopback only, so that routers on other hosts reach
// it.
func multiHostApp(t *testing.T) map[string]string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", "pyapp", "server.py"))
	if err != nil {
		t.Fatal(err)
	}
	const loopback = `ThreadingHTTPServer(("127.0.0.1", port)`
	if !strings.Contains(string(src), loopback) {
		t.Fatalf("testdata/pyapp/server.py no longer listens with %s: update multiHostApp", loopback)
	}
	return map[string]string{"server.py": strings.Replace(string(src), loopback, `ThreadingHTTPServer(("", port)`, 1)}
}

// webUp is the web processes of app that are up, by name, as the node's
// API lists them.
func webUp(n *node, app string) (map[string]skiff.ProcessView, error) {
	ps, err := n.processes(app)
	if err != nil {
		return nil, err
	}
	up := map[string]skiff.ProcessView{}
	for _, p := range ps {
		if p.Type == "web" && p.State == skiff.StateUp {
			up[p.Name] = p
		}
	}
	return up, nil
}

// TestMultiHostCluster runs a cluster of five hosts, each a network
// namespace of its own: three bus nodes with every role and two nodes
// with the agent and router roles only. An app deployed with git push
// runs its two web processes on two hosts and answers through the router
// of a third; then hosts die: a bus node while config is written (no
// acknowledged write is lost), and the scheduler's leader (another node
// takes over and carries out a scale made after the death).
func TestMultiHostCluster(t *testing.T) {
	c := startCluster(t,
		nodeSpec{roles: allRoles}, nodeSpec{roles: allRoles}, nodeSpec{roles: allRoles},
		nodeSpec{roles: agentRoles}, nodeSpec{roles: agentRoles})
	const app = "hello"

	// routerAway is a living router, preferably on a node without the bus
	// role, on none of the hosts given.
	routerAway := func(t *testing.T, not ...string) *node {
		t.Helper()
		var found *node
		for _, n := range c.alive() {
			if n.has(skiff.RoleRouter) && !slices.Contains(not, n.name) && (found == nil || !n.has(skiff.RoleBus)) {
				found = n
			}
		}
		if found == nil {
			t.Fatalf("no living router outside %v", not)
		}
		return found
	}

	ok := t.Run("spread_and_route", func(t *testing.T) {
		n1 := c.nodes[0]
		key := sshKey(t, n1.srv.home)
		n1.ok(t, "keys", "add")
		n1.ok(t, "apps", "create", app)
		dir := repo(t, "pyapp", multiHostApp(t))
		if r := n1.run(dir, time.Minute, "git", "remote", "-a", app); r.code != 0 || !strings.Contains(r.out, "ssh://git@"+n1.srv.sshAddr) {
			t.Fatalf("git remote: %d %s %s", r.code, r.out, r.err)
		}
		start := time.Now()
		if out := mustGit(t, dir, key, "push", "skiff", "main"); !strings.Contains(out, "v1 deployed") {
			t.Fatalf("push output lacks v1 deployed:\n%s", out)
		}
		t.Logf("git push to %s: v1 deployed in %s", n1, time.Since(start).Round(time.Millisecond))

		start = time.Now()
		n1.ok(t, "scale", "-a", app, "web=2")
		var web map[string]skiff.ProcessView
		took := poll(t, 2*time.Minute, 250*time.Millisecond, "web.1 and web.2 up", func() bool {
			var err error
			web, err = webUp(n1, app)
			return err == nil && len(web) == 2
		})
		t.Logf("scale web=2: both up in %s", took.Round(time.Millisecond))
		w1, w2 := web["web.1"], web["web.2"]
		if w1.Node == "" || w1.Node == w2.Node {
			t.Fatalf("web.1 on %q and web.2 on %q: want two different nodes", w1.Node, w2.Node)
		}
		for _, p := range []skiff.ProcessView{w1, w2} {
			if n := c.node(p.Node); n == nil || !strings.HasPrefix(p.Addr, n.host.ip+":") {
				t.Fatalf("%s on %s at %q: want an address of that node's host", p.Name, p.Node, p.Addr)
			}
		}
		table := n1.ok(t, "ps", "-a", app)
		for _, want := range []string{w1.Node, w2.Node, w1.Addr, w2.Addr} {
			if !strings.Contains(table, want) {
				t.Fatalf("ps lacks %q:\n%s", want, table)
			}
		}
		t.Logf("web.1 on %s at %s, web.2 on %s at %s", w1.Node, w1.Addr, w2.Node, w2.Addr)

		// Through the router of a third host, both answer.
		rtr := routerAway(t, w1.Node, w2.Node)
		seen := map[string]bool{}
		took = poll(t, time.Minute, 50*time.Millisecond, "web.1 and web.2 to answer through "+rtr.name, func() bool {
			if _, body, err := rtr.get(host(app), "/"); err == nil {
				for _, d := range []string{"dyno=web.1", "dyno=web.2"} {
					seen[d] = seen[d] || strings.Contains(body, d)
				}
			}
			return len(seen) == 2
		})
		t.Logf("both web processes answer through the router of %s %s after the scale was asked", rtr, time.Since(start).Round(time.Millisecond))
		const requests = 100
		for i := range requests {
			code, body, err := rtr.get(host(app), "/")
			if err != nil || code != 200 || !strings.Contains(body, "release=v1 dyno=web.") {
				t.Fatalf("request %d through %s: %d %q %v", i, rtr, code, body, err)
			}
		}
		t.Logf("%d requests through %s: all 200", requests, rtr)
	})
	if !ok {
		return
	}

	if !nodeFailures(t, c, app, routerAway) {
		return
	}

	ok = t.Run("bus_node_killed_during_config_writes", func(t *testing.T) {
		// The hardest node to lose: the leader of the config bucket's
		// stream, whose followers must elect another.
		const stream = "KV_" + skiff.BucketConfig
		leader, err := c.streamLeader(t, stream)
		victim := c.node(leader)
		if err != nil || victim == nil {
			victim = c.nodes[1]
			t.Logf("no leader of %s known (%q, %v): killing %s", stream, leader, err, victim)
		}
		api := c.pick(t, skiff.RoleAPI, victim)
		rtr := routerAway(t, victim.name)
		t.Logf("killing %s, leader of %s; writing through the API of %s; requests through the router of %s", victim, stream, api, rtr)
		api.ok(t, "apps", "create", "settings")
		load := startLoad(rtr.srv.rtrAddr, host(app), "release=v1", 2, 20*time.Millisecond, 2*time.Second)
		w := startConfigWrites(api, "settings")
		poll(t, time.Minute, 50*time.Millisecond, "10 acknowledged writes", func() bool { return w.ackedSince(time.Time{}) >= 10 })

		killed := c.killHost(t, victim)
		poll(t, 3*time.Minute, 100*time.Millisecond, "10 acknowledged writes after the kill", func() bool { return w.ackedSince(killed) >= 10 })
		writes := w.stop()
		ws := statsOfWrites(writes, killed)
		t.Logf("writes around the kill, from its time: %s", ws.timeline)
		t.Logf("%d writes: %d acknowledged, %d not; the first write started after the kill was acknowledged %s after it; longest time between acknowledgements %s",
			len(writes), ws.acked, ws.failed, ws.firstAck.Round(time.Millisecond), ws.longestGap.Round(time.Millisecond))
		for msg, n := range ws.errs {
			t.Logf("%d writes failed with: %s", n, msg)
		}
		stale, landed, took := readBack(t, api, "settings", writes, 30*time.Second)
		t.Logf("every acknowledged write read back through %s within %s of the end of the writes (the first read lacked %d: %v); writes not acknowledged that landed anyway: %v",
			api, took.Round(time.Millisecond), len(stale), stale, landed)
		t.Logf("requests through %s: %s", rtr, statsAfter(load.stop(), killed))
		t.Logf("the platform's log of %s since the kill:\n\t%s", app, strings.Join(platformLog(api, app, killed), "\n\t"))

		// The node comes back with its data directory and catches up.
		took = c.restart(t, victim)
		t.Logf("%s restarted: ready in %s", victim, took.Round(time.Millisecond))
		stale, _, took = readBack(t, victim, "settings", writes, 30*time.Second)
		t.Logf("every acknowledged write read back through the restarted %s within %s of its being ready (the first read lacked %d: %v)",
			victim, took.Round(time.Millisecond), len(stale), stale)
	})
	if !ok {
		return
	}

	t.Run("scheduler_leader_killed", func(t *testing.T) {
		// The death of a bus node before may have left the scheduler
		// without a leader for a while (its lease could not be renewed
		// while the locks bucket's stream elected a new leader).
		var leader *node
		took := poll(t, time.Minute, 250*time.Millisecond, "a living node to log that its scheduler leads", func() bool {
			leader = c.schedulerLeader()
			return leader != nil
		})
		if took > time.Second {
			t.Logf("no scheduler led for %s after the previous test", took.Round(time.Millisecond))
		}
		// The lease and the logs agree (the lease may have changed hands
		// meanwhile, a leader losing it while the bus failed over).
		var holder string
		poll(t, 30*time.Second, 250*time.Millisecond, "the scheduler lease's holder to be the node that logged last that it leads", func() bool {
			leader = c.schedulerLeader()
			holder, _ = c.leaseHolder(t, "scheduler")
			return leader != nil && holder == leader.name
		})
		api := c.pick(t, skiff.RoleAPI, leader)
		rtr := routerAway(t, leader.name)
		// Both web processes up first, so that what follows is the
		// scheduler's doing after the kill.
		var web map[string]skiff.ProcessView
		took = poll(t, time.Minute, 250*time.Millisecond, "web.1 and web.2 up before the kill", func() bool {
			var err error
			web, err = webUp(api, app)
			return err == nil && len(web) == 2
		})
		if took > time.Second {
			t.Logf("web.1 and web.2 were both up again only %s after the previous test", took.Round(time.Millisecond))
		}
		onLeader := 0
		for _, p := range web {
			if p.Node == leader.name {
				onLeader++
			}
		}
		t.Logf("killing %s, the scheduler's leader, with %d of the %d web processes; scaling through the API of %s; requests through the router of %s",
			leader, onLeader, len(web), api, rtr)
		marks := c.logMarks()
		load := startLoad(rtr.srv.rtrAddr, host(app), "release=v1", 2, 20*time.Millisecond, 2*time.Second)
		load.waitSteady(t, time.Second, 30*time.Second)

		killed := c.killHost(t, leader)
		took = poll(t, 2*time.Minute, 200*time.Millisecond, "skiff scale web=3 to be acknowledged", func() bool {
			start := time.Now()
			r := api.run("", 30*time.Second, "scale", "-a", app, "web=3")
			if r.code != 0 {
				t.Logf("scale web=3 failed after %s: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(r.err))
			}
			return r.code == 0
		})
		t.Logf("scale web=3 acknowledged %s after the kill", took.Round(time.Millisecond))

		var next *node
		var leadAt time.Time
		poll(t, 2*time.Minute, 100*time.Millisecond, "another node's scheduler to lead", func() bool {
			for n, mark := range marks {
				if _, at, ok := n.findLog(mark, "msg=leading", "role=scheduler"); ok && n != leader {
					next, leadAt = n, at
					return true
				}
			}
			return false
		})
		t.Logf("%s logged that its scheduler leads %s after the kill", next, leadAt.Sub(killed).Round(time.Millisecond))
		poll(t, 30*time.Second, 250*time.Millisecond, "the scheduler lease to be held by a living node that logged that it leads", func() bool {
			holder, _ = c.leaseHolder(t, "scheduler")
			n := c.node(holder)
			if n == nil || n.dead {
				return false
			}
			_, _, ok := n.findLog(marks[n], "msg=leading", "role=scheduler")
			return ok
		})

		poll(t, 3*time.Minute, 500*time.Millisecond, "web.1, web.2 and web.3 up on living nodes", func() bool {
			var err error
			web, err = webUp(api, app)
			if err != nil || len(web) != 3 {
				return false
			}
			for _, p := range web {
				if n := c.node(p.Node); n == nil || n.dead {
					return false
				}
			}
			return true
		})
		var where []string
		for _, name := range []string{"web.1", "web.2", "web.3"} {
			where = append(where, fmt.Sprintf("%s on %s", name, web[name].Node))
		}
		t.Logf("web=3 carried out %s after the kill: %s", time.Since(killed).Round(time.Millisecond), strings.Join(where, ", "))
		if _, at, ok := next.findLog(marks[next], "node declared dead", "node="+leader.name); ok {
			t.Logf("%s declared %s dead %s after the kill", next, leader.name, at.Sub(killed).Round(time.Millisecond))
		}

		t.Logf("the platform's log of %s since the kill:\n\t%s", app, strings.Join(platformLog(api, app, killed), "\n\t"))

		// Figures only: requests through a living router while the dead
		// host's web process is replaced.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) && !statsAfter(load.records(), killed).recovered {
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(time.Second)
		t.Logf("requests through %s: %s", rtr, statsAfter(load.stop(), killed))
	})
}

// TestMultiHostNetwork checks the harness itself, without skiff: hosts
// reach each other and the test, and no address outside their network;
// a paused process answers nothing until resumed; a cut link cuts a host
// off until it is restored; killing a host ends every process in it.
func TestMultiHostNetwork(t *testing.T) {
	nw := newNetwork(t)
	h1, h2 := nw.addHost(), nw.addHost()
	srv := h1.command("python3", "-m", "http.server", "--bind", h1.ip, "8000")
	srv.Dir = t.TempDir()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { srv.Wait(); close(exited) }()
	url := "http://" + net.JoinHostPort(h1.ip, "8000") + "/"
	hc := &http.Client{Timeout: time.Second}
	fromTest := func() error {
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	fromH2 := func() error {
		out, err := h2.command("curl", "-sS", "-o", "/dev/null", "--max-time", "1", url).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	eventually(t, 10*time.Second, "h1 to answer the test", func() bool { return fromTest() == nil })
	if err := fromH2(); err != nil {
		t.Fatalf("h2 to h1: %v", err)
	}
	if out, err := ipCmd("-n", h2.ns, "route", "get", "1.1.1.1"); err == nil {
		t.Fatalf("a host has a route out of its network: %s", out)
	}

	pause(t, srv)
	if err := fromTest(); err == nil {
		t.Fatal("h1's server answered while stopped")
	}
	resume(t, srv)
	if err := fromTest(); err != nil {
		t.Fatalf("h1's server after SIGCONT: %v", err)
	}

	h1.cut(t)
	if err := fromTest(); err == nil {
		t.Fatal("the test reached h1 with its link down")
	}
	if err := fromH2(); err == nil {
		t.Fatal("h2 reached h1 with h1's link down")
	}
	cutAt := time.Now()
	h1.restore(t)
	eventually(t, 10*time.Second, "h1 to answer again", func() bool { return fromTest() == nil && fromH2() == nil })
	t.Logf("h1 answered again %s after its link was restored", time.Since(cutAt).Round(time.Millisecond))

	if n, _, _ := h1.killAll(); n != 1 {
		t.Errorf("killed %d processes on h1, want 1", n)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the process on h1 still runs after its host was killed")
	}
	if pids := h1.pids(); len(pids) != 0 {
		t.Fatalf("processes left on h1: %v", pids)
	}
}

// nodeFailures drains the bus nodes (the app's two web processes move to
// the two agent nodes without a failed request), pauses an agent node for
// less than the grace period (nothing moves), kills an agent node's host
// (its instance is started elsewhere; requests through a router recover
// at once) and cuts the other agent node off and heals it (its instance
// is replaced, and once the link is back the old one is killed).
func nodeFailures(t *testing.T, c *cluster, app string, routerAway func(*testing.T, ...string) *node) bool {
	api := c.nodes[0]
	// up is the app's web processes once exactly two run, both up, on
	// living nodes other than those of not.
	up := func(not ...string) map[string]skiff.ProcessView {
		ps, err := api.processes(app)
		if err != nil || len(ps) != 2 {
			return nil
		}
		web := map[string]skiff.ProcessView{}
		for _, p := range ps {
			if n := c.node(p.Node); p.State != skiff.StateUp || n == nil || n.dead || slices.Contains(not, p.Node) {
				return nil
			}
			web[p.Name] = p
		}
		return web
	}
	running := func(t *testing.T) map[string]skiff.ProcessView {
		t.Helper()
		web := up()
		if web == nil {
			t.Fatal("the app does not run two web processes")
		}
		return web
	}
	agentNode := func(web map[string]skiff.ProcessView) (skiff.ProcessView, *node) {
		for _, name := range []string{"web.1", "web.2"} {
			if n := c.node(web[name].Node); !n.has(skiff.RoleBus) {
				return web[name], n
			}
		}
		t.Fatalf("no web process on a node without the bus role: %+v", web)
		return skiff.ProcessView{}, nil
	}

	ok := t.Run("drain", func(t *testing.T) {
		rtr := c.nodes[4]
		load := startLoad(rtr.srv.rtrAddr, host(app), "release=v1", 2, 20*time.Millisecond, 2*time.Second)
		load.waitSteady(t, time.Second, 30*time.Second)
		start := time.Now()
		for _, n := range c.nodes[:3] {
			api.ok(t, "nodes", "drain", n.name)
		}
		var web map[string]skiff.ProcessView
		took := poll(t, 2*time.Minute, 250*time.Millisecond, "web.1 and web.2 on n4 and n5 only", func() bool {
			web = up("n1", "n2", "n3")
			return web != nil && web["web.1"].Node != web["web.2"].Node
		})
		time.Sleep(time.Second)
		stats := statsAfter(load.stop(), start)
		t.Logf("drained n1, n2 and n3 in %s (web.1 on %s, web.2 on %s); requests through %s meanwhile: %s",
			took.Round(time.Millisecond), web["web.1"].Node, web["web.2"].Node, rtr, stats)
		if stats.failed > 0 {
			t.Errorf("%d requests failed during the drain (first: %s)", stats.failed, stats.firstErr)
		}
		table := api.ok(t, "nodes")
		for _, want := range []string{"drained", "n4", "agent,router", " *"} {
			if !strings.Contains(table, want) {
				t.Errorf("skiff nodes lacks %q:\n%s", want, table)
			}
		}
		t.Logf("skiff nodes:\n%s", table)
		for _, n := range c.nodes[:3] {
			api.ok(t, "nodes", "undrain", n.name)
		}
	})
	if !ok {
		return false
	}

	ok = t.Run("pause_shorter_than_grace", func(t *testing.T) {
		before := running(t)
		_, victim := agentNode(before)
		marks := c.logMarks()
		victim.pause(t)
		time.Sleep(3 * time.Second) // the grace period is 6 s
		victim.resume(t)
		time.Sleep(5 * time.Second) // past the grace period, counted from the pause
		after := up()
		for _, name := range []string{"web.1", "web.2"} {
			if after == nil || after[name].ID != before[name].ID {
				t.Fatalf("%s changed after a pause of %s shorter than the grace period: before %+v, after %+v", name, victim, before, after)
			}
		}
		for n, mark := range marks {
			if line, _, ok := n.findLog(mark, "node declared dead"); ok {
				t.Fatalf("%s declared a node dead after a short pause: %s", n, line)
			}
		}
		t.Logf("%s paused 3 s: nothing rescheduled, nobody declared dead", victim)
	})
	if !ok {
		return false
	}

	ok = t.Run("agent_node_killed", func(t *testing.T) {
		web := running(t)
		lost, victim := agentNode(web)
		rtr := routerAway(t, victim.name)
		load := startLoad(rtr.srv.rtrAddr, host(app), "release=v1", 4, 10*time.Millisecond, 2*time.Second)
		load.waitSteady(t, time.Second, 30*time.Second)
		killed := c.killHost(t, victim)
		var now map[string]skiff.ProcessView
		poll(t, time.Minute, 100*time.Millisecond, "two web processes up on living nodes", func() bool {
			now = up(victim.name)
			return now != nil
		})
		replaced := time.Since(killed)
		time.Sleep(time.Second)
		stats := statsAfter(load.stop(), killed)
		t.Logf("killed %s with %s: replaced on %s and up %s after the kill; requests through %s: %s",
			victim, lost.Name, now[lost.Name].Node, replaced.Round(time.Millisecond), rtr, stats)
		if !stats.recovered {
			t.Errorf("requests through %s did not recover: %s", rtr, stats)
		}
	})
	if !ok {
		return false
	}

	return t.Run("agent_node_cut_off", func(t *testing.T) {
		web := running(t)
		lost, victim := agentNode(web)
		rtr := routerAway(t, victim.name)
		load := startLoad(rtr.srv.rtrAddr, host(app), "release=v1", 4, 10*time.Millisecond, 3*time.Second)
		load.waitSteady(t, time.Second, 30*time.Second)
		cut := time.Now()
		victim.host.cut(t)
		var now map[string]skiff.ProcessView
		poll(t, time.Minute, 100*time.Millisecond, "two web processes up on nodes other than the cut-off one", func() bool {
			now = up(victim.name)
			return now != nil
		})
		replaced := time.Since(cut)
		load.waitSteady(t, time.Second, 30*time.Second)
		stats := statsAfter(load.stop(), cut)
		t.Logf("cut %s off with %s: replaced on %s and up %s after the cut; requests through %s: %s",
			victim, lost.Name, now[lost.Name].Node, replaced.Round(time.Millisecond), rtr, stats)
		if !stats.recovered {
			t.Errorf("requests through %s did not recover: %s", rtr, stats)
		}

		// The old instance runs on, cut off, until the link comes back;
		// then its agent learns the node was declared dead and kills it.
		victim.host.restore(t)
		healed := time.Now()
		gone := poll(t, time.Minute, 50*time.Millisecond, "the cut-off instance to stop once the link is back", func() bool {
			conn, err := net.DialTimeout("tcp", lost.Addr, 200*time.Millisecond)
			if err == nil {
				conn.Close()
			}
			return err != nil
		})
		t.Logf("the cut-off %s at %s stopped %s after the link came back", lost.Name, lost.Addr, gone.Round(time.Millisecond))
		poll(t, time.Minute, 250*time.Millisecond, victim.name+" up again", func() bool {
			var ns []skiff.NodeInfo
			r := api.run("", 30*time.Second, "nodes", "--json")
			if r.code != 0 || json.Unmarshal([]byte(r.out), &ns) != nil {
				return false
			}
			for _, n := range ns {
				if n.Name == victim.name {
					return n.Status == "up"
				}
			}
			return false
		})
		t.Logf("%s up again, as a new incarnation, %s after the link came back", victim, time.Since(healed).Round(time.Millisecond))
		if after := up(); after == nil || after[lost.Name].ID != now[lost.Name].ID {
			t.Errorf("the replacement of %s changed after the heal: %+v, then %+v", lost.Name, now, after)
		}
	})
}
