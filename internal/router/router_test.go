package router

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/bus/bustest"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

type env struct {
	t  *testing.T
	st *store.Store
	r  *Router
}

func start(t *testing.T) *env {
	t.Helper()
	return startB(t)
}

// startB starts a router on a fresh bus, for a test or a benchmark.
func startB(t testing.TB) *env { return startWith(t, nil) }

// startWith starts a router on a fresh bus with the config that
// configure, if not nil, changes.
func startWith(t testing.TB, configure func(*Config)) *env {
	t.Helper()
	box, _ := secret.New(make([]byte, secret.KeySize))
	st, err := store.Open(context.Background(), bustest.Start(t), box, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0", Domain: "apps.test"}
	if configure != nil {
		configure(&cfg)
	}
	r, err := New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !r.Ready() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	e := &env{st: st, r: r}
	if tt, ok := t.(*testing.T); ok {
		e.t = tt
	}
	return e
}

func eventually(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// upstream starts an HTTP server that answers with its name and echoes the
// headers the router set.
func upstream(t *testing.T, name string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s host=%s xff=%s proto=%s fhost=%s rid=%s start=%v",
			name, r.Host, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"),
			r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Request-Id"), r.Header.Get("X-Request-Start") != "")
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func (e *env) app(name string, current int) {
	e.st.Apps.Put(context.Background(), name, skiff.App{Name: name, Current: current})
}

func (e *env) instance(app, id string, release int, state skiff.InstanceState, addr string) {
	i := skiff.Instance{ID: id, App: app, Proc: "web", Index: 1, Release: release, State: state, Addr: addr}
	e.st.Instances.Put(context.Background(), i.Key(), i)
}

func (e *env) get(host, path string, hdr ...string) (int, string) {
	req, _ := http.NewRequest("GET", "http://"+e.r.Addr()+path, nil)
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) waitBody(host, prefix string) string {
	var body string
	eventually(e.t, func() bool { _, body = e.get(host, "/"); return strings.HasPrefix(body, prefix) })
	return body
}

func TestRoutesByHostWithForwardedHeaders(t *testing.T) {
	e := start(t)
	e.app("shop", 1)
	e.instance("shop", "a", 1, skiff.StateUp, upstream(t, "one"))
	body := e.waitBody("shop.apps.test:8080", "one")
	for _, want := range []string{"host=shop.apps.test:8080", "xff=127.0.0.1", "proto=http", "fhost=shop.apps.test:8080", "start=true"} {
		if !strings.Contains(body, want) {
			t.Errorf("backend saw %q, want %q", body, want)
		}
	}
	if rid := strings.SplitN(strings.SplitN(body, "rid=", 2)[1], " ", 2)[0]; len(rid) != 36 {
		t.Errorf("generated request id %q", rid)
	}
	// A well-formed request id and a forwarding chain are kept.
	_, body = e.get("SHOP.apps.test.", "/", "X-Request-Id", "client-supplied-request-id-1", "X-Forwarded-For", "10.0.0.1")
	if !strings.Contains(body, "rid=client-supplied-request-id-1") || !strings.Contains(body, "xff=10.0.0.1, 127.0.0.1") {
		t.Errorf("backend saw %q", body)
	}
	// A malformed one is replaced.
	if _, body = e.get("shop.apps.test", "/", "X-Request-Id", "bad id"); strings.Contains(body, "rid=bad id") {
		t.Errorf("malformed request id passed: %q", body)
	}
}

func TestUnknownHostAndNoInstance(t *testing.T) {
	e := start(t)
	if code, body := e.get("nothing.apps.test", "/"); code != 404 || body != "No app is deployed at nothing.apps.test.\n" {
		t.Fatalf("unknown host: %d %q", code, body)
	}
	e.app("idle", 0)
	eventually(t, func() bool { code, _ := e.get("idle.apps.test", "/"); return code == 503 })
	if _, body := e.get("idle.apps.test", "/"); !strings.Contains(body, "App idle has no running web process") {
		t.Fatalf("503 body %q", body)
	}
	// An instance not yet up gets no traffic.
	e.instance("idle", "s", 1, skiff.StateStarting, upstream(t, "starting"))
	time.Sleep(100 * time.Millisecond)
	if code, _ := e.get("idle.apps.test", "/"); code != 503 {
		t.Fatalf("a starting instance got traffic: %d", code)
	}
}

func TestBalancesAndCustomDomains(t *testing.T) {
	e := start(t)
	e.app("shop", 1)
	e.instance("shop", "a", 1, skiff.StateUp, upstream(t, "one"))
	e.instance("shop", "b", 1, skiff.StateUp, upstream(t, "two"))
	e.st.Domains.Put(context.Background(), "www.shop.example", skiff.Domain{Hostname: "www.shop.example", App: "shop"})
	e.waitBody("www.shop.example", "")
	eventually(t, func() bool {
		seen := map[string]int{}
		for i := 0; i < 20; i++ {
			_, body := e.get("www.shop.example", "/")
			seen[strings.Fields(body)[0]]++
		}
		return seen["one"] > 0 && seen["two"] > 0
	})
	e.st.Domains.Delete(context.Background(), "www.shop.example")
	eventually(t, func() bool { code, _ := e.get("www.shop.example", "/"); return code == 404 })
}

func TestPrefersCurrentReleaseAndFollowsSwitch(t *testing.T) {
	e := start(t)
	e.app("shop", 1)
	e.instance("shop", "old", 1, skiff.StateUp, upstream(t, "v1"))
	e.instance("shop", "new", 2, skiff.StateUp, upstream(t, "v2"))
	e.waitBody("shop.apps.test", "v1")
	for i := 0; i < 4; i++ {
		if _, body := e.get("shop.apps.test", "/"); !strings.HasPrefix(body, "v1") {
			t.Fatalf("release 2 served before it was current: %q", body)
		}
	}
	e.app("shop", 2)
	e.waitBody("shop.apps.test", "v2")
	// With no instance of the current release up, any up instance serves.
	e.st.Instances.Delete(context.Background(), skiff.InstanceKey("shop", "new"))
	e.waitBody("shop.apps.test", "v1")
}

func TestSkipsBackendThatRefusesConnections(t *testing.T) {
	e := start(t)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	e.app("shop", 1)
	e.instance("shop", "a", 1, skiff.StateUp, dead)
	e.instance("shop", "b", 1, skiff.StateUp, upstream(t, "alive"))
	e.waitBody("shop.apps.test", "alive")
	for i := 0; i < 6; i++ {
		req, _ := http.NewRequest("POST", "http://"+e.r.Addr()+"/", strings.NewReader("payload"))
		req.Host = "shop.apps.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "alive") {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
	}
	e.st.Instances.Delete(context.Background(), skiff.InstanceKey("shop", "b"))
	eventually(t, func() bool { code, _ := e.get("shop.apps.test", "/"); return code == 502 })
}

func TestBuildTable(t *testing.T) {
	v := newView("d")
	b := &batch{apps: map[string]bool{}}
	for _, c := range []change{
		{bucket: skiff.BucketApps, key: "a", value: skiff.App{Name: "a", Current: 2}},
		{bucket: skiff.BucketApps, key: "b", value: skiff.App{Name: "b"}},
		{bucket: skiff.BucketInstances, key: "a.1", value: skiff.Instance{ID: "1", App: "a", Proc: "web", Release: 1, State: skiff.StateUp, Addr: "h:1"}},
		{bucket: skiff.BucketInstances, key: "a.2", value: skiff.Instance{ID: "2", App: "a", Proc: "web", Release: 2, State: skiff.StateUp, Addr: "h:2"}},
		{bucket: skiff.BucketInstances, key: "a.3", value: skiff.Instance{ID: "3", App: "a", Proc: "worker", Release: 2, State: skiff.StateUp, Addr: "h:3"}},
		{bucket: skiff.BucketInstances, key: "a.4", value: skiff.Instance{ID: "4", App: "a", Proc: "web", Release: 2, State: skiff.StateStopping, Addr: "h:4"}},
		{bucket: skiff.BucketDomains, key: "a.example.com", value: skiff.Domain{Hostname: "a.example.com", App: "a"}},
		{bucket: skiff.BucketDomains, key: "_.a.example.org", value: skiff.Domain{Hostname: "*.a.example.org", App: "a"}},
		{bucket: skiff.BucketDomains, key: "orphan.example.com", value: skiff.Domain{Hostname: "orphan.example.com", App: "gone"}},
	} {
		v.apply(c, b)
	}
	tab := v.update(b)
	a := tab.lookup([]byte("a.d"))
	exact := 0
	tab.exact.each(func(*appEntry) { exact++ })
	if exact != 3 || tab.lookup([]byte("a.example.com")) != a || tab.lookup([]byte("orphan.example.com")) != nil ||
		tab.lookup([]byte("x.y.a.example.org")) != a || tab.lookup([]byte("a.example.org")) != nil {
		t.Fatalf("hosts = %v %v", tab.exact, tab.wildcard)
	}
	if bs := a.route.Load().backends; len(bs) != 1 || bs[0].addr != "h:2" {
		t.Fatalf("backends of a = %+v, want only the current release's up web instance", bs)
	}
	if len(tab.lookup([]byte("b.d")).route.Load().backends) != 0 {
		t.Fatal("b has backends")
	}

	// A change of instances replaces the app's route, not the table, and
	// keeps the backend objects that stay.
	kept := a.route.Load().backends[0]
	b = &batch{apps: map[string]bool{}}
	v.apply(change{bucket: skiff.BucketInstances, key: "a.5", value: skiff.Instance{ID: "5", App: "a", Proc: "web", Release: 2, State: skiff.StateUp, Addr: "h:5"}}, b)
	if v.update(b) != nil {
		t.Fatal("a change of instances made a new table")
	}
	if bs := a.route.Load().backends; len(bs) != 2 || bs[0] != kept {
		t.Fatalf("backends after a new instance = %+v", bs)
	}
}

func TestLookupAllocatesNothing(t *testing.T) {
	v := newView("apps.test")
	b := &batch{apps: map[string]bool{}}
	for i := 0; i < 1000; i++ {
		name := fmt.Sprintf("app%d", i)
		v.apply(change{bucket: skiff.BucketApps, key: name, value: skiff.App{Name: name}}, b)
	}
	v.apply(change{bucket: skiff.BucketDomains, key: "_.wild.example", value: skiff.Domain{Hostname: "*.wild.example", App: "app7"}}, b)
	tab := v.update(b)
	hosts := [][]byte{[]byte("app500.apps.test"), []byte("a.b.wild.example"), []byte("nowhere.example")}
	if n := testing.AllocsPerRun(1000, func() {
		for _, h := range hosts {
			tab.lookup(h)
		}
	}); n != 0 {
		t.Errorf("lookup allocates %.1f times", n)
	}
}

func TestPickPrefersTheLessLoaded(t *testing.T) {
	busy, idle, down := &backend{id: "busy"}, &backend{id: "idle"}, &backend{id: "down"}
	busy.inflight.Store(5)
	now := time.Now().UnixNano()
	down.markDown(now)
	rt := &route{backends: []*backend{busy, idle}}
	for i := 0; i < 100; i++ {
		if b := rt.pick(now, nil); b != idle {
			t.Fatalf("picked %s over the idle backend", b.id)
		}
	}
	rt = &route{backends: []*backend{down, idle}}
	for i := 0; i < 100; i++ {
		if b := rt.pick(now, nil); b != idle {
			t.Fatalf("picked %s, which is down", b.id)
		}
	}
	if b := rt.pick(now, []*backend{idle}); b != down {
		t.Fatalf("with the rest tried, picked %v, want the one down rather than none", b)
	}
	if b := rt.pick(now, []*backend{idle, down}); b != nil {
		t.Fatalf("with all tried, picked %s", b.id)
	}
}

// TestBackendsAndPools: backends are told apart by app and instance ID;
// backends at one address share its connection pool, which closes when
// the last of them goes.
func TestBackendsAndPools(t *testing.T) {
	v := newView("d")
	b := &batch{apps: map[string]bool{}}
	inst := func(app, id, addr string) change {
		return change{bucket: skiff.BucketInstances, key: skiff.InstanceKey(app, id),
			value: skiff.Instance{ID: id, App: app, Proc: "web", Release: 1, State: skiff.StateUp, Addr: addr}}
	}
	for _, c := range []change{
		{bucket: skiff.BucketApps, key: "a", value: skiff.App{Name: "a", Current: 1}},
		{bucket: skiff.BucketApps, key: "b", value: skiff.App{Name: "b", Current: 1}},
		inst("a", "same", "h:1"), inst("b", "same", "h:2"), inst("b", "other", "h:1"),
	} {
		v.apply(c, b)
	}
	tab := v.update(b)
	ba := tab.lookup([]byte("a.d")).route.Load().backends
	bb := tab.lookup([]byte("b.d")).route.Load().backends
	if len(ba) != 1 || len(bb) != 2 || ba[0].addr != "h:1" {
		t.Fatalf("backends a=%v b=%v", ba, bb)
	}
	shared := ba[0].pool
	if bb[0].addr == "h:1" && bb[0].pool != shared || bb[1].addr == "h:1" && bb[1].pool != shared {
		t.Fatal("backends at one address do not share its pool")
	}
	// a's instance goes: h:1's pool stays for b's.
	b = &batch{apps: map[string]bool{}}
	v.apply(change{bucket: skiff.BucketInstances, key: skiff.InstanceKey("a", "same"), deleted: true, value: skiff.Instance{}}, b)
	v.update(b)
	if v.pools["h:1"] == nil || &v.pools["h:1"].pool != shared || shared.closed {
		t.Fatal("the shared pool closed while a backend still uses it")
	}
	if len(tab.lookup([]byte("b.d")).route.Load().backends) != 2 {
		t.Fatal("b lost a backend when a's instance of the same ID went")
	}
	b = &batch{apps: map[string]bool{}}
	v.apply(change{bucket: skiff.BucketInstances, key: skiff.InstanceKey("b", "other"), deleted: true, value: skiff.Instance{}}, b)
	v.update(b)
	if v.pools["h:1"] != nil || !shared.closed {
		t.Fatal("the pool of an address no backend has is still open")
	}
}
