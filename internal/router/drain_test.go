package router

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// slowBackend answers /slow once released (or when its connection ends),
// /partial with a first part at once and the rest once released, and
// anything else with its name at once.
type slowBackend struct {
	addr     string
	started  chan string // the path of each slow request, once under way
	release  chan struct{}
	once     sync.Once
	requests atomic.Int64
}

func newSlowBackend(t *testing.T, name string) *slowBackend {
	s := &slowBackend{started: make(chan string, 16), release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		switch r.URL.Path {
		case "/slow":
			s.started <- r.URL.Path
			select {
			case <-s.release:
				io.WriteString(w, "done")
			case <-r.Context().Done():
			}
		case "/partial":
			io.WriteString(w, "part ")
			w.(http.Flusher).Flush()
			s.started <- r.URL.Path
			select {
			case <-s.release:
				io.WriteString(w, "rest")
			case <-r.Context().Done():
			}
		default:
			io.WriteString(w, name)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(s.finish) // before the server closes, which waits for its handlers
	s.addr = strings.TrimPrefix(srv.URL, "http://")
	return s
}

// finish lets the slow requests under way answer.
func (s *slowBackend) finish() { s.once.Do(func() { close(s.release) }) }

// waitStarted waits for a slow request to reach the backend.
func (s *slowBackend) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-s.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request did not reach the backend")
	}
}

// result is how a request through the router ended.
type result struct {
	code int
	body string
	err  error // reading the response failed (the connection was cut)
	at   time.Time
}

// goGet sends a GET on a client of its own, on another goroutine.
func goGet(client *http.Client, url, host string) <-chan result {
	out := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			out <- result{err: err, at: time.Now()}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- result{code: resp.StatusCode, body: string(b), err: err, at: time.Now()}
	}()
	return out
}

func wait(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(15 * time.Second):
		t.Fatal("the request did not end")
		return result{}
	}
}

// backends returns the IDs of app's current backends.
func (e *env) backends(app string) []string {
	en := e.r.table.Load().lookup([]byte(app + ".apps.test"))
	if en == nil {
		return nil
	}
	var ids []string
	for _, b := range en.route.Load().backends {
		ids = append(ids, b.id)
	}
	return ids
}

func (e *env) waitBackends(app string, ids ...string) {
	e.t.Helper()
	eventually(e.t, func() bool { return strings.Join(e.backends(app), ",") == strings.Join(ids, ",") })
}

// TestDrainLetsRequestsFinish: a request under way on a backend that is
// retired finishes when it takes less than the drain timeout, while the
// retired backend gets no new requests.
func TestDrainLetsRequestsFinish(t *testing.T) {
	e := startWith(t, func(c *Config) { c.DrainTimeout = time.Minute })
	old := newSlowBackend(t, "old")
	e.app("shop", 1)
	e.instance("shop", "a", 1, skiff.StateUp, old.addr)
	e.waitBody("shop.apps.test", "old")

	slow := goGet(&http.Client{}, "http://"+e.r.Addr()+"/slow", "shop.apps.test")
	old.waitStarted(t)
	e.instance("shop", "b", 1, skiff.StateUp, upstream(t, "new"))
	e.st.Instances.Delete(context.Background(), skiff.InstanceKey("shop", "a"))
	e.waitBackends("shop", "b")

	before := old.requests.Load()
	for i := 0; i < 10; i++ {
		if _, body := e.get("shop.apps.test", "/"); !strings.HasPrefix(body, "new") {
			t.Fatalf("request %d after the retirement got %q", i, body)
		}
	}
	if n := old.requests.Load() - before; n != 0 {
		t.Errorf("the retired backend got %d new requests", n)
	}
	old.finish()
	if r := wait(t, slow); r.err != nil || r.code != 200 || r.body != "done" {
		t.Fatalf("the request under way got %d %q %v", r.code, r.body, r.err)
	}
}

// TestDrainCutsRequestsAtTheTimeout: requests under way on a retired
// backend longer than the drain timeout are cut then: one not answered
// yet gets a 502, one being answered a connection that ends early.
func TestDrainCutsRequestsAtTheTimeout(t *testing.T) {
	const drain = 300 * time.Millisecond
	e := startWith(t, func(c *Config) { c.DrainTimeout = drain })
	old := newSlowBackend(t, "old")
	e.app("shop", 1)
	e.instance("shop", "a", 1, skiff.StateUp, old.addr)
	e.waitBody("shop.apps.test", "old")

	unanswered := goGet(&http.Client{}, "http://"+e.r.Addr()+"/slow", "shop.apps.test")
	partial := goGet(&http.Client{}, "http://"+e.r.Addr()+"/partial", "shop.apps.test")
	old.waitStarted(t)
	old.waitStarted(t)
	retired := time.Now()
	e.st.Instances.Delete(context.Background(), skiff.InstanceKey("shop", "a"))

	r := wait(t, unanswered)
	if r.err != nil || r.code != 502 || !strings.Contains(r.body, "did not answer") {
		t.Errorf("the unanswered request got %d %q %v, want a 502", r.code, r.body, r.err)
	}
	if d := r.at.Sub(retired); d < drain {
		t.Errorf("the unanswered request was cut %v after the retirement, before the drain timeout", d)
	}
	r = wait(t, partial)
	if r.err == nil || r.code != 200 || r.body != "part " {
		t.Errorf("the request being answered got %d %q %v, want its first part and a cut", r.code, r.body, r.err)
	}
	if d := r.at.Sub(retired); d < drain {
		t.Errorf("the request being answered was cut %v after the retirement, before the drain timeout", d)
	}
}

// TestDrainClosesTunnels: an upgraded connection to a retired backend is
// closed at the drain timeout.
func TestDrainClosesTunnels(t *testing.T) {
	const drain = 300 * time.Millisecond
	e := startWith(t, func(c *Config) { c.DrainTimeout = drain })
	addr := echoUpgradeBackend(t)
	e.route(t, "ws", addr, "/")
	c, err := net.Dial("tcp", e.r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /socket HTTP/1.1\r\nHost: ws.apps.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nping")
	br := bufio.NewReader(c)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %+v", err, resp)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 4)
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "ping" {
		t.Fatalf("echoed %q, %v", got, err)
	}

	served := func() int {
		e.r.mu.Lock()
		defer e.r.mu.Unlock()
		return len(e.r.conns)
	}
	withTunnel := served()
	retired := time.Now()
	e.st.Instances.Delete(context.Background(), skiff.InstanceKey("ws", "ws-1"))
	_, err = br.ReadByte()
	if ne, ok := err.(net.Error); err == nil || ok && ne.Timeout() {
		t.Fatalf("the tunnel to the retired backend is still open: %v", err)
	}
	if d := time.Since(retired); d < drain {
		t.Errorf("the tunnel was closed %v after the retirement, before the drain timeout", d)
	}
	// The router lets go of the client's connection too, though the
	// client keeps it open.
	eventually(t, func() bool { return served() < withTunnel })
}

// TestDrainSparesTheNextPoolAtAnAddress: a backend that comes at the
// address of a retired one has a pool of its own, which the retired one's
// drain does not cut.
func TestDrainSparesTheNextPoolAtAnAddress(t *testing.T) {
	const drain = 500 * time.Millisecond
	e := startWith(t, func(c *Config) { c.DrainTimeout = drain })
	srv := newSlowBackend(t, "srv")
	e.app("shop", 1)
	e.instance("shop", "a", 1, skiff.StateUp, srv.addr)
	e.waitBody("shop.apps.test", "srv")

	first := goGet(&http.Client{}, "http://"+e.r.Addr()+"/slow", "shop.apps.test")
	srv.waitStarted(t)
	e.st.Instances.Delete(context.Background(), skiff.InstanceKey("shop", "a"))
	e.waitBackends("shop")
	e.instance("shop", "a2", 1, skiff.StateUp, srv.addr)
	e.waitBackends("shop", "a2")
	second := goGet(&http.Client{}, "http://"+e.r.Addr()+"/slow", "shop.apps.test")
	srv.waitStarted(t)

	if r := wait(t, first); r.code != 502 {
		t.Fatalf("the request on the retired backend got %d %q %v, want a 502 at the drain timeout", r.code, r.body, r.err)
	}
	// The old pool's timer has fired: the new backend's request goes on.
	srv.finish()
	if r := wait(t, second); r.err != nil || r.code != 200 || r.body != "done" {
		t.Fatalf("the request on the new backend at the same address got %d %q %v", r.code, r.body, r.err)
	}
}

// TestPoolTracksBusyConnections: connections handed out are busy until
// given back, and those still busy when the drain ends are closed.
func TestPoolTracksBusyConnections(t *testing.T) {
	p := &connPool{}
	conns := make([]*backendConn, 4)
	for i := range conns {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		conns[i] = &backendConn{Conn: a, br: bufio.NewReader(a), bw: bufio.NewWriter(a), busy: -1}
		if !p.add(conns[i]) {
			t.Fatal("an open pool refused a connection")
		}
	}
	p.put(conns[0])
	p.drop(conns[2])
	if len(p.busy) != 2 || len(p.idle) != 1 || conns[0].busy != -1 || conns[2].busy != -1 {
		t.Fatalf("busy %v idle %v", p.busy, p.idle)
	}
	for i, c := range p.busy {
		if c.busy != i {
			t.Fatalf("busy[%d] says it is at %d", i, c.busy)
		}
	}
	if c := p.get(); c != conns[0] || len(p.busy) != 3 {
		t.Fatalf("got %v, busy %d", c, len(p.busy))
	}
	p.closeAll()
	p.closeBusy()
	if len(p.busy) != 0 || p.add(&backendConn{busy: -1}) {
		t.Fatal("a drained pool keeps or takes connections")
	}
	if _, err := conns[1].Write([]byte("x")); err == nil {
		t.Fatal("a busy connection is open after the drain")
	}
	p.put(conns[3]) // given back late: closed, not kept
	if len(p.idle) != 0 {
		t.Fatal("a drained pool kept a connection")
	}
}

// TestDeadNodeCutAtOnce: when a node is declared dead, its backends get
// no more requests and requests under way on them are cut at once, not
// after the drain timeout; an idempotent one not answered yet is sent
// again to a backend on a live node.
func TestDeadNodeCutAtOnce(t *testing.T) {
	e := startWith(t, func(c *Config) { c.DrainTimeout = time.Minute })
	ctx := context.Background()
	old := newSlowBackend(t, "old")
	e.app("shop", 1)
	put := func(id, node, addr string) {
		i := skiff.Instance{ID: id, App: "shop", Proc: "web", Index: 1, Release: 1, State: skiff.StateUp, Addr: addr, Node: node}
		e.st.Instances.Put(ctx, i.Key(), i)
	}
	put("a", "n1", old.addr)
	e.waitBody("shop.apps.test", "old")

	slow := goGet(&http.Client{}, "http://"+e.r.Addr()+"/slow", "shop.apps.test")
	old.waitStarted(t)
	put("b", "n2", upstream(t, "new"))
	e.waitBackends("shop", "a", "b")
	declared := time.Now()
	e.st.Nodes.Put(ctx, "n1", skiff.Node{Name: "n1", State: skiff.NodeDead})
	r := wait(t, slow)
	if r.err != nil || r.code != 200 || !strings.HasPrefix(r.body, "new") {
		t.Fatalf("the request under way on the dead node got %d %q %v, want it answered by the live one", r.code, r.body, r.err)
	}
	if d := r.at.Sub(declared); d > 5*time.Second {
		t.Fatalf("the request was cut %s after the node's death", d)
	}
	e.waitBackends("shop", "b")
	// The node comes back (a new incarnation): its instances, once they
	// report again, are routed to.
	e.st.Nodes.Put(ctx, "n1", skiff.Node{Name: "n1"})
	e.waitBackends("shop", "a", "b")
}
