package bus

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// testCluster is three bus nodes on loopback, with TLS between them and
// to clients.
type testCluster struct {
	t       *testing.T
	ca      *CA
	cfgs    []Config
	nodes   []*Bus
	clients []string // nats://host:port of each node
}

func newTestCluster(t *testing.T, n int) *testCluster {
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, ca: ca, nodes: make([]*Bus, n)}
	dir := t.TempDir()
	var routes []string
	for i := 0; i < n; i++ {
		routes = append(routes, freeAddr(t))
	}
	for i := 0; i < n; i++ {
		cert, err := ca.Issue(fmt.Sprintf("n%d", i), "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		listen := freeAddr(t)
		var peers []string
		for j, r := range routes {
			if j != i {
				peers = append(peers, r)
			}
		}
		c.cfgs = append(c.cfgs, Config{Dir: filepath.Join(dir, fmt.Sprint(i)), Name: fmt.Sprintf("n%d", i), Token: testToken,
			Listen: listen, TLS: ca.TLS(cert), Cluster: &Cluster{Listen: routes[i], Peers: peers, User: "route", Password: "route-secret"}})
		c.clients = append(c.clients, "nats://"+listen)
	}
	done := make(chan error, n)
	for i := range c.nodes {
		go func() { done <- c.start(i) }()
	}
	for range c.nodes {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, b := range c.nodes {
			if b != nil {
				b.Shutdown()
			}
		}
	})
	return c
}

func (c *testCluster) start(i int) error {
	b, err := New(c.cfgs[i])
	if err != nil {
		return err
	}
	if err := b.Start(30 * time.Second); err != nil {
		return err
	}
	c.nodes[i] = b
	return nil
}

func (c *testCluster) stop(i int) {
	c.nodes[i].Shutdown()
	c.nodes[i] = nil
}

// dial connects a client with a certificate of the cluster to the nodes
// at urls.
func (c *testCluster) dial(urls ...string) *nats.Conn {
	c.t.Helper()
	cert, err := c.ca.Issue("client")
	if err != nil {
		c.t.Fatal(err)
	}
	nc, err := Dial(urls, testToken, c.ca.TLS(cert), c.t.Name())
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// TestClusterKeepsAcknowledgedWrites: three nodes keep a bucket at three
// replicas; one dies during a stream of writes, which go on; once it is
// back and another dies, every acknowledged write is still there.
func TestClusterKeepsAcknowledgedWrites(t *testing.T) {
	c := newTestCluster(t, 3)
	js, err := jetstream.New(c.dial(c.clients...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var kv jetstream.KeyValue
	// The meta leader is elected once the nodes have met.
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		kv, err = js.CreateKeyValue(cctx, jetstream.KeyValueConfig{Bucket: "state", Replicas: 3})
		ccancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("create an R3 bucket: %v", err)
		}
		t.Logf("create: %v", err)
		time.Sleep(200 * time.Millisecond)
	}
	acked := map[string]string{}
	put := func(i int) {
		key, val := fmt.Sprintf("k%04d", i), fmt.Sprintf("v%d", i)
		for ctx.Err() == nil {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := kv.Put(pctx, key, []byte(val))
			pcancel()
			if err == nil {
				acked[key] = val
				return
			}
			time.Sleep(50 * time.Millisecond) // a new leader is being elected
		}
		t.Fatalf("put %s never acknowledged", key)
	}
	for i := 0; i < 100; i++ {
		put(i)
	}
	c.stop(2)
	for i := 100; i < 200; i++ {
		put(i)
	}
	if err := c.start(2); err != nil {
		t.Fatal(err)
	}
	// Node 2 catches up, then node 0 dies: what 1 and 2 hold must be all.
	time.Sleep(2 * time.Second)
	c.stop(0)
	kv2, err := jetstream.New(c.dial(c.clients[1], c.clients[2]))
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for key, val := range acked {
		var got jetstream.KeyValueEntry
		for ctx.Err() == nil {
			gctx, gcancel := context.WithTimeout(ctx, 2*time.Second)
			b, err := kv2.KeyValue(gctx, "state")
			if err == nil {
				got, err = b.Get(gctx, key)
			}
			gcancel()
			if err == nil || strings.Contains(fmt.Sprint(err), "not found") {
				break
			}
			t.Logf("get %s: %v", key, err)
			time.Sleep(100 * time.Millisecond)
		}
		if got == nil || string(got.Value()) != val {
			missing = append(missing, key)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d acknowledged writes lost: %v", len(missing), len(acked), missing[:min(10, len(missing))])
	}
}

// TestTLSRefusesStrangers: a bus with TLS refuses a client without a
// certificate of its authority, without TLS, or without the token.
func TestTLSRefusesStrangers(t *testing.T) {
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := ca.Issue("n0", "127.0.0.1")
	addr := freeAddr(t)
	start(t, Config{Dir: t.TempDir(), Name: "n0", Token: testToken, Listen: addr, TLS: ca.TLS(cert)})
	urls := []string{"nats://" + addr}
	own, _ := ca.Issue("client")
	nc, err := Dial(urls, testToken, ca.TLS(own), "member")
	if err != nil {
		t.Fatalf("a client of the cluster: %v", err)
	}
	nc.Close()

	other, _ := NewCA("other")
	stranger, _ := other.Issue("intruder")
	strangerTLS := other.TLS(stranger)
	strangerTLS.RootCAs = ca.Pool() // it trusts the bus, the bus not it
	for name, c := range map[string]struct {
		token string
		tls   *tls.Config
	}{
		"another authority": {testToken, strangerTLS},
		"wrong token":       {"wrong-token", ca.TLS(own)},
		"no TLS":            {testToken, nil},
	} {
		if nc, err := Dial(urls, c.token, c.tls, name); err == nil {
			nc.Close()
			t.Errorf("%s: connected", name)
		}
	}
}

func TestClusterNeedsTLSAndAName(t *testing.T) {
	ca, _ := NewCA("test")
	cert, _ := ca.Issue("n0", "127.0.0.1")
	cl := &Cluster{Listen: "127.0.0.1:0", User: "r", Password: "p"}
	for _, c := range []Config{
		{Dir: t.TempDir(), Token: testToken, Name: "n0", Cluster: cl},
		{Dir: t.TempDir(), Token: testToken, TLS: ca.TLS(cert), Cluster: cl},
		{Dir: t.TempDir(), Token: testToken, Name: "n0", TLS: ca.TLS(cert), Cluster: &Cluster{Listen: "127.0.0.1:0"}},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}
