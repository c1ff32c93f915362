package e2e

// A harness for tests of several machines on one: each host is a Linux
// network namespace with an address of its own on a bridge that only the
// test uses, and runs `skiff server` (and, through its agent, app
// processes) inside it. The test process stays in the root namespace,
// which has an address on the bridge too, so the CLI and the test's HTTP
// clients reach every host as they would reach other machines.
//
//	root namespace: bridge skbID 10.X.Y.1/24 ── skvIDhN ═╗ veth pair
//	host N (netns skiff-ID-hN):                eth0 ═════╝ 10.X.Y.(N+1)/24, lo
//
// What a test can do to a host, as happens to machines:
//
//	killHost     kill -9 of every process in the namespace: the machine dies
//	cut/restore  the host's link goes down and comes back: a partition
//	pause/resume SIGSTOP and SIGCONT to its skiff server: a stalled process
//	restart      skiff server again, with the data directory it had
//
// A load generator (startLoad) records every request's start, end and
// outcome, so that a test can say how long after an event every request
// succeeded again (recovery).
//
// Everything is removed when the test ends: the processes first, then the
// namespaces (which takes their ends of the veth pairs with them), then
// the bridge.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/bus"
	"github.com/skiff-paas/skiff/internal/isolate"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/testkit"
)

func netnsPath(name string) string { return "/run/netns/" + name }

// networks numbers the networks of this test process, so that names
// made of the pid and the number are unique on the machine.
var networks atomic.Int32

// network is a test's private network of hosts.
type network struct {
	t      *testing.T
	id     string
	bridge string
	prefix netip.Prefix // a /24 of 10.0.0.0/8 nothing else on the machine uses
	gw     netip.Addr   // the root namespace's address on the bridge
	hosts  []*machine
}

// machine is one host: a network namespace on the test's bridge.
type machine struct {
	net  *network
	name string // h1, h2, …
	ns   string // the network namespace
	veth string // the root namespace's end of the host's link
	ip   string
}

// ipCmd runs ip(8) and returns its output, or an error that carries it.
func ipCmd(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// newNetwork makes the test's bridge, or skips the test where network
// namespaces cannot be made (not root, no ip netns, no nsenter).
func newNetwork(t *testing.T) *network {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("multi-host tests need root: they make network namespaces, a bridge and veth pairs")
	}
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("multi-host tests need %s: %v", tool, err)
		}
	}
	id := strconv.FormatInt(int64(os.Getpid()), 36) + strconv.FormatInt(int64(networks.Add(1)), 36)
	n := &network{t: t, id: id, bridge: "skb" + id}
	n.prefix = freeSubnet(t)
	n.gw = n.prefix.Addr().Next()
	// Probe: a namespace must be possible here before anything is made.
	probe := "skiff-" + id + "-probe"
	if _, err := ipCmd("netns", "add", probe); err != nil {
		t.Skipf("ip netns is not usable here: %v", err)
	}
	ipCmd("netns", "del", probe)
	if _, err := ipCmd("link", "add", n.bridge, "type", "bridge", "forward_delay", "0"); err != nil {
		t.Skipf("cannot make a bridge here: %v", err)
	}
	t.Cleanup(n.remove)
	for _, args := range [][]string{
		{"addr", "add", n.gw.String() + "/24", "dev", n.bridge},
		{"link", "set", n.bridge, "up"},
	} {
		if _, err := ipCmd(args...); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("network %s: bridge %s, %s", id, n.bridge, n.prefix)
	return n
}

// freeSubnet picks a random 10.X.Y.0/24 that overlaps no address or route
// of the root namespace.
func freeSubnet(t *testing.T) netip.Prefix {
	t.Helper()
	var used []netip.Prefix
	for _, args := range [][]string{{"-4", "-o", "addr", "show"}, {"-4", "route", "show", "table", "all"}} {
		out, err := ipCmd(args...)
		if err != nil {
			t.Skipf("ip does not work here: %v", err)
		}
		for _, f := range strings.Fields(out) {
			if p, err := netip.ParsePrefix(f); err == nil {
				used = append(used, p.Masked())
			} else if a, err := netip.ParseAddr(f); err == nil && a.Is4() {
				used = append(used, netip.PrefixFrom(a, 32))
			}
		}
	}
	for range 1000 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(1 + rand.IntN(254)), byte(rand.IntN(256)), 0}), 24)
		if !slices.ContainsFunc(used, p.Overlaps) {
			return p
		}
	}
	t.Fatal("no free /24 in 10.0.0.0/8")
	return netip.Prefix{}
}

// addHost makes a namespace with lo up and a link to the bridge.
func (n *network) addHost() *machine {
	n.t.Helper()
	i := len(n.hosts) + 1
	if i > 250 {
		n.t.Fatal("a network has at most 250 hosts")
	}
	ip := n.gw
	for range i {
		ip = ip.Next()
	}
	h := &machine{net: n, name: fmt.Sprintf("h%d", i), ns: fmt.Sprintf("skiff-%s-h%d", n.id, i),
		veth: fmt.Sprintf("skv%sh%d", n.id, i), ip: ip.String()}
	n.hosts = append(n.hosts, h)
	for _, args := range [][]string{
		{"netns", "add", h.ns},
		{"link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.ns},
		{"link", "set", h.veth, "master", n.bridge, "up"},
		{"-n", h.ns, "addr", "add", h.ip + "/24", "dev", "eth0"},
		{"-n", h.ns, "link", "set", "eth0", "up"},
		{"-n", h.ns, "link", "set", "lo", "up"},
	} {
		if _, err := ipCmd(args...); err != nil {
			n.t.Fatal(err)
		}
	}
	return h
}

// remove kills every process of every host, then deletes the namespaces,
// the links and the bridge.
func (n *network) remove() {
	for _, h := range n.hosts {
		h.killAll()
		if _, err := ipCmd("netns", "del", h.ns); err != nil {
			n.t.Log(err)
		}
		ipCmd("link", "del", h.veth) // gone with the namespace already, normally
	}
	if _, err := ipCmd("link", "del", n.bridge); err != nil {
		n.t.Log(err)
	}
}

// command is a command to run in the host's network namespace (and in
// the root namespace's other namespaces: the mounts, the cgroups, the
// pids of the machine running the test).
func (h *machine) command(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + netnsPath(h.ns), "--", name}, args...)...)
}

// pids lists the processes in the host's namespace.
func (h *machine) pids() []int {
	out, err := ipCmd("netns", "pids", h.ns)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// killAll sends SIGKILL to every process in the namespace until none is
// left (a process may fork while the others die). It says how many it
// killed, when it sent the first SIGKILL and how long until none was left.
func (h *machine) killAll() (killed int, first time.Time, took time.Duration) {
	pids := map[int]bool{}
	for range 250 {
		left := h.pids()
		if len(left) == 0 {
			if !first.IsZero() {
				took = time.Since(first)
			}
			return len(pids), first, took
		}
		for _, p := range left {
			if first.IsZero() {
				first = time.Now()
			}
			if syscall.Kill(p, syscall.SIGKILL) == nil {
				pids[p] = true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.net.t.Errorf("processes left in %s after SIGKILL: %v", h.ns, h.pids())
	return len(pids), first, time.Since(first)
}

// cut takes the host's link down: it reaches no other host, and none
// reaches it, while its processes run on.
func (h *machine) cut(t *testing.T) {
	t.Helper()
	if _, err := ipCmd("link", "set", h.veth, "down"); err != nil {
		t.Fatal(err)
	}
}

// restore brings the host's link back up.
func (h *machine) restore(t *testing.T) {
	t.Helper()
	if _, err := ipCmd("link", "set", h.veth, "up"); err != nil {
		t.Fatal(err)
	}
}

// cluster is a skiff cluster of one node per host.
type cluster struct {
	t     *testing.T
	net   *network
	nodes []*node
	token string // the join token
	obs   *nats.Conn
}

// node is one host's skiff server.
type node struct {
	c     *cluster
	host  *machine
	name  string
	roles []string
	srv   *server
	dead  bool // killed with its host, not started again
	// started is where the output of the server's last start begins.
	started int
}

// nodeSpec says what a node of a new cluster runs.
type nodeSpec struct {
	roles []string
	extra []string // more flags of skiff server
}

// Every role, as a bus node of a cluster runs them; an agent node runs
// instances and serves requests.
var (
	allRoles   = []string{skiff.RoleBus, skiff.RoleAPI, skiff.RoleSSH, skiff.RoleBuilder, skiff.RoleScheduler, skiff.RoleAgent, skiff.RoleRouter}
	agentRoles = []string{skiff.RoleAgent, skiff.RoleRouter}
)

// Ports every node listens on, at its host's address.
const (
	apiPort, routerPort, sshPort, busPort, clusterPort = "7070", "8080", "2222", "4222", "6222"
)

// startCluster starts one node per spec, each on a host of its own, named
// n1, n2, …: the first bus node makes the cluster, the others join it
// with its token; nodes without the bus role connect to every bus node.
// It returns once every node is ready, with the CLI logged in to every
// API node (node.cli).
func startCluster(t *testing.T, specs ...nodeSpec) *cluster {
	t.Helper()
	c := &cluster{t: t, net: newNetwork(t)}
	start := time.Now()
	var busURLs []string
	for i, spec := range specs {
		h := c.net.addHost()
		n := &node{c: c, host: h, name: fmt.Sprintf("n%d", i+1), roles: spec.roles}
		// Made before c.stop is registered, the directories are removed
		// after it has run: after the processes that use them are gone.
		data := t.TempDir()
		// Builds run as their app's user, which must be able to reach the
		// data directory, as it can under /var/lib.
		os.Chmod(filepath.Dir(data), 0o711)
		n.srv = &server{t: t, data: data, home: t.TempDir(), netns: h.ns, out: &testkit.SyncBuffer{}, wait: func() {},
			apiAddr: net.JoinHostPort(h.ip, apiPort), rtrAddr: net.JoinHostPort(h.ip, routerPort), sshAddr: net.JoinHostPort(h.ip, sshPort)}
		if n.has(skiff.RoleBus) {
			busURLs = append(busURLs, "nats://"+net.JoinHostPort(h.ip, busPort))
		}
		c.nodes = append(c.nodes, n)
	}
	first := c.nodes[0]
	if !first.has(skiff.RoleBus) {
		t.Fatal("the first node of a cluster must have the bus role")
	}
	// Registered after the network's cleanup, so run before it: the
	// servers stop (or are killed), then the namespaces go.
	t.Cleanup(c.stop)
	for i, n := range c.nodes {
		flags := append([]string{"--roles", strings.Join(n.roles, ","), "--node-name", n.name, "--agent-addr", n.host.ip}, specs[i].extra...)
		if n.has(skiff.RoleBus) {
			flags = append(flags, "--bus-addr", net.JoinHostPort(n.host.ip, busPort), "--cluster-addr", net.JoinHostPort(n.host.ip, clusterPort))
		} else {
			flags = append(flags, "--join", strings.Join(busURLs, ","))
		}
		if n != first {
			flags = append(flags, "--join-token", c.token)
		}
		n.srv.flags = flags
		n.srv.start()
		if n == first {
			eventually(t, 30*time.Second, "the cluster's secrets", func() bool {
				_, err := os.Stat(filepath.Join(n.srv.data, "cluster", "cluster.json"))
				return err == nil
			})
			out, err := exec.Command(skiffBin, "server", "join-token", "--data", n.srv.data).CombinedOutput()
			if err != nil {
				t.Fatalf("skiff server join-token: %v\n%s", err, out)
			}
			c.token = strings.TrimSpace(string(out))
		}
	}
	for _, n := range c.nodes {
		n.waitReady(t, 0, 3*time.Minute)
	}
	for _, n := range c.nodes {
		if n.has(skiff.RoleAPI) {
			n.login(t)
		}
	}
	t.Logf("cluster of %d hosts ready in %s", len(c.nodes), time.Since(start).Round(time.Millisecond))
	return c
}

func (n *node) has(role string) bool { return slices.Contains(n.roles, role) }

func (n *node) String() string { return n.name + " (" + n.host.ip + ")" }

// log is everything the node's server printed, over all its lives.
func (n *node) log() string { return n.srv.out.String() }

// logMark is where the node's output ends now, for logSince.
func (n *node) logMark() int { return len(n.log()) }

// logSince is what the node printed after mark.
func (n *node) logSince(mark int) string { return n.log()[min(mark, len(n.log())):] }

// waitReady waits until the node says it is ready after mark.
func (n *node) waitReady(t *testing.T, mark int, d time.Duration) {
	t.Helper()
	eventually(t, d, n.name+" to be ready", func() bool {
		select {
		case <-n.srv.exited:
			t.Fatalf("%s exited:\n%s", n.name, tail(n.logSince(mark), 60))
		default:
		}
		return strings.Contains(n.logSince(mark), "msg=ready")
	})
}

// login saves the node's admin token and API address in the node's HOME.
func (n *node) login(t *testing.T) {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(n.srv.data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	n.ok(t, "login", "--api", "http://"+n.srv.apiAddr, "--token", strings.TrimSpace(string(token)))
}

// run runs the CLI, in the root namespace, against the node's API (as
// logged in by login), in dir, for at most d.
func (n *node) run(dir string, d time.Duration, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, skiffBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+n.srv.home, "XDG_CONFIG_HOME="+filepath.Join(n.srv.home, ".config"),
		"SKIFF_API=", "SKIFF_TOKEN=", "SKIFF_APP=")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{out: stdout.String(), err: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		r.code, r.err = -1, r.err+fmt.Sprintf("(killed after %s)", d)
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		r.code, r.err = -1, err.Error()
	}
	return r
}

func (n *node) cli(args ...string) result { return n.run("", 2*time.Minute, args...) }

// ok runs the CLI against the node's API and fails t unless it exits 0.
func (n *node) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := n.cli(args...)
	if r.code != 0 {
		t.Fatalf("%s: skiff %s: exit %d\nstdout:\n%s\nstderr:\n%s", n.name, strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r.out
}

// alive are the nodes not killed, in order.
func (c *cluster) alive() []*node {
	var out []*node
	for _, n := range c.nodes {
		if !n.dead {
			out = append(out, n)
		}
	}
	return out
}

// node is the node named name.
func (c *cluster) node(name string) *node {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// pick is the first living node with role that is none of not.
func (c *cluster) pick(t *testing.T, role string, not ...*node) *node {
	t.Helper()
	for _, n := range c.alive() {
		if n.has(role) && !slices.Contains(not, n) {
			return n
		}
	}
	t.Fatalf("no living node with the %s role other than %v", role, not)
	return nil
}

// logMarks marks where the output of every living node is now.
func (c *cluster) logMarks() map[*node]int {
	marks := map[*node]int{}
	for _, n := range c.alive() {
		marks[n] = n.logMark()
	}
	return marks
}

// killHost kills every process on the node's host with SIGKILL, as when
// the machine loses power: the server, its bus, its app processes. It
// returns when they are all gone, with the time of the first SIGKILL.
func (c *cluster) killHost(t *testing.T, n *node) time.Time {
	t.Helper()
	killed, at, took := n.host.killAll()
	<-n.srv.exited
	n.srv.cmd, n.dead = nil, true
	t.Logf("killed host %s of %s: %d processes, all gone %s after the first SIGKILL", n.host.name, n, killed, took.Round(time.Millisecond))
	return at
}

// restart starts the node's server again on its host, with its data
// directory and flags, and waits until it is ready; it returns how long
// that took.
func (c *cluster) restart(t *testing.T, n *node) time.Duration {
	t.Helper()
	if n.srv.cmd != nil {
		t.Fatalf("%s is running", n.name)
	}
	n.reap(t)
	mark, start := n.logMark(), time.Now()
	n.started = mark
	n.srv.t = t
	n.srv.start()
	n.dead = false
	n.waitReady(t, mark, 3*time.Minute)
	return time.Since(start)
}

// pause stops the node's server with SIGSTOP: its bus, its roles and its
// heartbeats stall, while the processes of its apps run on.
func (n *node) pause(t *testing.T) {
	t.Helper()
	pause(t, n.srv.cmd)
}

// resume lets a paused node's server go on (SIGCONT).
func (n *node) resume(t *testing.T) {
	t.Helper()
	resume(t, n.srv.cmd)
}

// pause stops a process with SIGSTOP, as a machine that stalls (a VM
// frozen, a long GC pause): it keeps its connections, and answers nothing.
func pause(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

// resume lets a paused process go on (SIGCONT).
func resume(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// reap removes the cgroups a killed node's sandboxes left behind, as its
// agent does at its next start.
func (n *node) reap(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(n.srv.data, "agent", "instances", "*"))
	for _, dir := range dirs {
		if _, err := isolate.Reap(filepath.Base(dir)); err != nil {
			t.Logf("%s: reap %s: %v", n.name, filepath.Base(dir), err)
		}
	}
}

// stop ends every node: links restored and paused servers resumed, then
// SIGTERM to all at once, SIGKILL for those still running after 20 s (a
// node may be cut off from a majority of the bus), then whatever is left
// on the hosts. With $SKIFF_E2E_LOGS set to a directory, every node's
// output is kept there, as NAME.log.
func (c *cluster) stop() {
	for _, n := range c.nodes {
		ipCmd("link", "set", n.host.veth, "up")
	}
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		if n.srv.cmd == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.srv.cmd.Process.Signal(syscall.SIGCONT)
			n.srv.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-n.srv.exited:
			case <-time.After(20 * time.Second):
				c.t.Logf("%s did not stop within 20s of SIGTERM: killing its host", n.name)
				n.host.killAll()
				<-n.srv.exited
			}
			n.srv.cmd = nil
		}()
	}
	wg.Wait()
	if c.obs != nil {
		c.obs.Close()
	}
	for _, n := range c.nodes {
		n.host.killAll()
		n.reap(c.t)
		if c.t.Failed() {
			c.t.Logf("%s output:\n%s", n.name, tail(n.log(), 80))
		}
		if dir := os.Getenv("SKIFF_E2E_LOGS"); dir != "" {
			os.MkdirAll(dir, 0o755)
			if err := os.WriteFile(filepath.Join(dir, n.name+".log"), []byte(n.log()), 0o644); err != nil {
				c.t.Log(err)
			}
		}
	}
}

// observer is a connection of the test's own to the cluster's bus, with a
// certificate of the cluster's authority, to look at what no API shows
// (stream leaders, leases). It reconnects to any bus node.
func (c *cluster) observer(t *testing.T) *nats.Conn {
	t.Helper()
	if c.obs != nil {
		return c.obs
	}
	first := c.nodes[0].srv.data
	data, err := os.ReadFile(filepath.Join(first, "cluster", "cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		CACert []byte `json:"ca_cert"`
		CAKey  []byte `json:"ca_key"`
	}
	if err := json.Unmarshal(data, &info); err != nil {
		t.Fatal(err)
	}
	ca, err := bus.LoadCA(info.CACert, info.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("e2e-observer")
	if err != nil {
		t.Fatal(err)
	}
	token, err := secret.ReadKey(filepath.Join(first, "bus.key"))
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, n := range c.nodes {
		if n.has(skiff.RoleBus) {
			urls = append(urls, "nats://"+net.JoinHostPort(n.host.ip, busPort))
		}
	}
	nc, err := bus.Dial(urls, fmt.Sprintf("%x", token), ca.TLS(cert), "e2e-observer")
	if err != nil {
		t.Fatal(err)
	}
	c.obs = nc
	return nc
}

// streamLeader is the name of the node leading a JetStream stream (a
// bucket's stream is KV_<bucket>).
func (c *cluster) streamLeader(t *testing.T, stream string) (string, error) {
	js, err := jetstream.New(c.observer(t))
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "", err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return "", err
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "", fmt.Errorf("stream %s has no leader", stream)
	}
	return info.Cluster.Leader, nil
}

// leaseHolder is the holder of a lease of the locks bucket, read from the
// bus.
func (c *cluster) leaseHolder(t *testing.T, name string) (string, error) {
	js, err := jetstream.New(c.observer(t))
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, skiff.BucketLocks)
	if err != nil {
		return "", err
	}
	e, err := kv.Get(ctx, name)
	if err != nil {
		return "", err
	}
	var v struct{ Holder string }
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return "", err
	}
	return v.Holder, nil
}

// schedulerLeader is the living node whose scheduler said last, since the
// node's last start, that it leads, and did not say since that it lost
// the lease; nil when there is none.
func (c *cluster) schedulerLeader() *node {
	for _, n := range c.alive() {
		var leading bool
		sc := bufio.NewScanner(strings.NewReader(n.logSince(n.started)))
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.Contains(line, "role=scheduler") {
				continue
			}
			switch {
			case strings.Contains(line, "msg=leading"):
				leading = true
			case strings.Contains(line, "lost the scheduler lease"):
				leading = false
			}
		}
		if leading {
			return n
		}
	}
	return nil
}

// processes is what `skiff ps --json` says of app through the node's API.
func (n *node) processes(app string) ([]skiff.ProcessView, error) {
	r := n.run("", 30*time.Second, "ps", "-a", app, "--json")
	if r.code != 0 {
		return nil, fmt.Errorf("%s: skiff ps: exit %d: %s", n.name, r.code, strings.TrimSpace(r.err))
	}
	var ps []skiff.ProcessView
	if err := json.Unmarshal([]byte(r.out), &ps); err != nil {
		return nil, fmt.Errorf("%s: skiff ps --json: %w", n.name, err)
	}
	return ps, nil
}

// get requests path from the node's router with the Host header host.
func (n *node) get(host, path string) (int, string, error) {
	return n.srv.get(host, path)
}

// poll calls cond every interval until it reports true, failing t after
// d; it returns how long that took. For conditions that run commands,
// which eventually's 50 ms would run too often.
func poll(t *testing.T, d, interval time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("waited %s for %s", d, what)
		}
		time.Sleep(interval)
	}
	return time.Since(start)
}

// loadRecord is one request of a load: when it started and ended, and
// whether it got the answer wanted.
type loadRecord struct {
	start, end time.Time
	ok         bool
	err        string
}

// loadGen keeps clients requesting / of a host through a router, and
// records every request.
type loadGen struct {
	mu   sync.Mutex // guards recs
	recs []loadRecord
	done chan struct{}
	wg   sync.WaitGroup
}

// startLoad starts clients that each request http://router/ with the
// Host header host every interval (their answers must contain want),
// with a timeout of its own per request, so that a dead backend shows as
// a failure within timeout.
func startLoad(router, host, want string, clients int, interval, timeout time.Duration) *loadGen {
	l := &loadGen{done: make(chan struct{})}
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tr := &http.Transport{DialContext: (&net.Dialer{Timeout: timeout}).DialContext}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Timeout: timeout, Transport: tr}
			for {
				select {
				case <-l.done:
					return
				default:
				}
				rec := loadRecord{start: time.Now()}
				req, _ := http.NewRequest("GET", "http://"+router+"/", nil)
				req.Host = host
				resp, err := hc.Do(req)
				if err == nil {
					var body []byte
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					switch {
					case err != nil:
					case resp.StatusCode != 200 || !strings.Contains(string(body), want):
						err = fmt.Errorf("%d %q", resp.StatusCode, strings.TrimSpace(string(body)))
					}
				}
				rec.end, rec.ok = time.Now(), err == nil
				if err != nil {
					rec.err = err.Error()
				}
				l.mu.Lock()
				l.recs = append(l.recs, rec)
				l.mu.Unlock()
				select {
				case <-l.done:
					return
				case <-time.After(interval):
				}
			}
		}()
	}
	return l
}

// records are the requests made so far, by start.
func (l *loadGen) records() []loadRecord {
	l.mu.Lock()
	out := slices.Clone(l.recs)
	l.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out
}

// stop ends the load and returns every request made.
func (l *loadGen) stop() []loadRecord {
	close(l.done)
	l.wg.Wait()
	return l.records()
}

// waitSteady waits until every request that ended in the last window
// succeeded (and some did), for at most d.
func (l *loadGen) waitSteady(t *testing.T, window, d time.Duration) {
	t.Helper()
	poll(t, d, 100*time.Millisecond, fmt.Sprintf("every request of %s to succeed", window), func() bool {
		since, n := time.Now().Add(-window), 0
		for _, r := range l.records() {
			if r.end.After(since) {
				if !r.ok {
					return false
				}
				n++
			}
		}
		return n > 0
	})
}

// loadStats sums up the requests that ended after an event.
type loadStats struct {
	ok, failed int
	firstErr   string
	// recovery is how long after the event the last failure ended: every
	// request that ended later succeeded. recovered is false when the
	// last request failed.
	recovery  time.Duration
	recovered bool
}

func statsAfter(recs []loadRecord, event time.Time) loadStats {
	s := loadStats{recovered: true}
	var lastFail time.Time
	for _, r := range recs {
		if r.end.Before(event) {
			continue
		}
		if r.ok {
			s.ok++
			continue
		}
		s.failed++
		if s.firstErr == "" {
			s.firstErr = r.err
		}
		if r.end.After(lastFail) {
			lastFail = r.end
		}
	}
	if s.failed > 0 {
		s.recovery = lastFail.Sub(event)
		s.recovered = false
		for _, r := range recs {
			if r.ok && r.start.After(lastFail) {
				s.recovered = true
				break
			}
		}
	}
	return s
}

func (s loadStats) String() string {
	out := fmt.Sprintf("%d requests ok, %d failed", s.ok, s.failed)
	switch {
	case s.failed == 0:
	case s.recovered:
		out += fmt.Sprintf(", every request succeeded from %s after the event (first failure: %s)", s.recovery.Round(time.Millisecond), s.firstErr)
	default:
		out += fmt.Sprintf(", still failing %s after the event (first failure: %s)", s.recovery.Round(time.Millisecond), s.firstErr)
	}
	return out
}

// configWrite is one `skiff config set -a APP Kn=n`: acknowledged when
// the CLI exited 0.
type configWrite struct {
	n          int
	start, end time.Time
	acked      bool
	err        string
}

// configWriter sets K1=1, K2=2, … on an app one after the other, through
// one node's API, recording which writes were acknowledged.
type configWriter struct {
	mu     sync.Mutex // guards writes
	writes []configWrite
	done   chan struct{}
	wg     sync.WaitGroup
}

func startConfigWrites(n *node, app string) *configWriter {
	w := &configWriter{done: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for i := 1; ; i++ {
			select {
			case <-w.done:
				return
			default:
			}
			cw := configWrite{n: i, start: time.Now()}
			r := n.run("", 30*time.Second, "config", "set", "-a", app, fmt.Sprintf("K%d=%d", i, i))
			cw.end, cw.acked, cw.err = time.Now(), r.code == 0, strings.TrimSpace(r.err)
			w.mu.Lock()
			w.writes = append(w.writes, cw)
			w.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return w
}

// ackedSince counts the acknowledged writes that started after t0.
func (w *configWriter) ackedSince(t0 time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, cw := range w.writes {
		if cw.acked && !cw.start.Before(t0) {
			n++
		}
	}
	return n
}

// stop waits for the write under way and returns every write.
func (w *configWriter) stop() []configWrite {
	close(w.done)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.writes)
}

// writeStats sums up writes around an event.
type writeStats struct {
	acked, failed int
	// firstAck is how long after the event the first write that started
	// after it was acknowledged (-1: none was).
	firstAck   time.Duration
	longestGap time.Duration // between two acknowledgements
	errs       map[string]int
	// timeline lists the writes from the last acknowledged before the
	// event to the first acknowledged after it, in seconds from it.
	timeline string
}

func statsOfWrites(writes []configWrite, event time.Time) writeStats {
	s := writeStats{firstAck: -1, errs: map[string]int{}}
	var last time.Time
	for _, cw := range writes {
		if !cw.acked {
			s.failed++
			s.errs[strings.ReplaceAll(cw.err, "\n", " ")]++
			continue
		}
		s.acked++
		if !last.IsZero() && cw.end.Sub(last) > s.longestGap {
			s.longestGap = cw.end.Sub(last)
		}
		last = cw.end
		if s.firstAck < 0 && cw.start.After(event) {
			s.firstAck = cw.end.Sub(event)
		}
	}
	var around []string
	for i, cw := range writes {
		lastBefore := cw.end.Before(event) && (i+1 == len(writes) || !writes[i+1].end.Before(event))
		if lastBefore || !cw.end.Before(event) && (s.firstAck < 0 || !cw.start.After(event.Add(s.firstAck))) {
			outcome := "acknowledged"
			if !cw.acked {
				outcome = "failed"
			}
			around = append(around, fmt.Sprintf("K%d %+.3f..%+.3f %s", cw.n, cw.start.Sub(event).Seconds(), cw.end.Sub(event).Seconds(), outcome))
		}
	}
	s.timeline = strings.Join(around, ", ")
	return s
}

// missing checks the app's config, read through n, against writes: it
// returns the acknowledged writes the config lacks, and the writes that
// were not acknowledged but landed anyway.
func missing(n *node, app string, writes []configWrite) (lost, unackedLanded []int, err error) {
	r := n.run("", 30*time.Second, "config", "-a", app, "--json")
	if r.code != 0 {
		return nil, nil, fmt.Errorf("%s: skiff config --json: exit %d: %s", n.name, r.code, strings.TrimSpace(r.err))
	}
	var cfg map[string]string
	if err := json.Unmarshal([]byte(r.out), &cfg); err != nil {
		return nil, nil, fmt.Errorf("%s: skiff config --json: %w: %q", n.name, err, r.out)
	}
	for _, cw := range writes {
		v, ok := cfg[fmt.Sprintf("K%d", cw.n)]
		switch {
		case cw.acked && v != strconv.Itoa(cw.n):
			lost = append(lost, cw.n)
		case !cw.acked && ok:
			unackedLanded = append(unackedLanded, cw.n)
		}
	}
	return lost, unackedLanded, nil
}

// logTime is the time= of a line a server logged.
func logTime(line string) (time.Time, bool) {
	f, _, _ := strings.Cut(line, " ")
	v, ok := strings.CutPrefix(f, "time=")
	if !ok {
		return time.Time{}, false
	}
	at, err := time.Parse(time.RFC3339Nano, v)
	return at, err == nil
}

// findLog is the first line the node printed after mark that holds every
// one of parts, and the time it was logged at (zero when it has no time).
func (n *node) findLog(mark int, parts ...string) (string, time.Time, bool) {
	for _, line := range strings.Split(n.logSince(mark), "\n") {
		match := true
		for _, p := range parts {
			match = match && strings.Contains(line, p)
		}
		if match {
			at, _ := logTime(line)
			return line, at, true
		}
	}
	return "", time.Time{}, false
}

// readBack reads the app's config through n until it holds every
// acknowledged write, and fails t if it does not within d: the writes
// are lost. A read may lag (a replica that has not applied the last
// writes answers it): stale is what the first successful read lacked,
// took how long until nothing was missing.
func readBack(t *testing.T, n *node, app string, writes []configWrite, d time.Duration) (stale, landed []int, took time.Duration) {
	t.Helper()
	start, read := time.Now(), false
	for {
		lost, l, err := missing(n, app, writes)
		if err == nil {
			if !read {
				stale, read = lost, true
			}
			if len(lost) == 0 {
				return stale, l, time.Since(start)
			}
		}
		if time.Since(start) > d {
			if err != nil {
				t.Fatalf("config not readable through %s within %s: %v", n, d, err)
			}
			t.Fatalf("acknowledged writes missing through %s after %s: %v", n, d, lost)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// platformLog is what the platform said of app (deploys, scaling, nodes
// lost, instances moved) from since on, as `skiff logs -s platform` shows
// it through n's API, each line with its time from since.
func platformLog(n *node, app string, since time.Time) []string {
	r := n.run("", 30*time.Second, "logs", "-a", app, "-s", "platform", "-n", "200")
	if r.code != 0 {
		return []string{fmt.Sprintf("(skiff logs: exit %d: %s)", r.code, strings.TrimSpace(r.err))}
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(r.out), "\n") {
		stamp, rest, _ := strings.Cut(line, " ")
		if at, err := time.Parse(time.RFC3339Nano, stamp); err == nil && !at.Before(since) {
			out = append(out, fmt.Sprintf("%+.3fs %s", at.Sub(since).Seconds(), rest))
		}
	}
	if len(out) == 0 {
		out = append(out, "(nothing)")
	}
	return out
}
