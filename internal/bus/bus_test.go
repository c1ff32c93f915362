package bus

// These tests are in package bus, not bus_test, because some things they
// check are only visible on the embedded server itself: whether it has a
// socket, and the JetStream sync setting. They cannot use
// bustest, which imports this package.

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const testToken = "s3cret-bus-token"

// start creates and starts a bus, and shuts it down when the test ends.
func start(t *testing.T, cfg Config) *Bus {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Shutdown)
	return b
}

func connect(t *testing.T, b *Bus) *nats.Conn {
	t.Helper()
	nc, err := b.Connect(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no dir", Config{Token: testToken}, "Dir and Token are required"},
		{"no token", Config{Dir: dir}, "Dir and Token are required"},
		{"listen without port", Config{Dir: dir, Token: testToken, Listen: "127.0.0.1"}, `listen address "127.0.0.1"`},
		{"listen with named port", Config{Dir: dir, Token: testToken, Listen: "127.0.0.1:nats"}, `listen port "nats"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(tt.cfg)
			if err == nil {
				b.Shutdown()
				t.Fatalf("New(%+v) = nil error, want one containing %q", tt.cfg, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New(%+v) = %q, want it to contain %q", tt.cfg, err, tt.want)
			}
		})
	}
}

// TestInProcessOnly checks that a bus with no Listen opens no socket and
// still serves in-process clients. A wrong token is not tried here: over the
// in-process pipe the refusal only arrives when the server's 10s write
// deadline expires, and in-process clients are this program's own code.
func TestInProcessOnly(t *testing.T) {
	b := start(t, Config{Dir: t.TempDir(), Token: testToken})
	if u := b.ClientURL(); u != "" {
		t.Errorf("ClientURL() = %q for a bus with no Listen, want empty", u)
	}
	if a := b.srv.Addr(); a != nil {
		t.Errorf("bus with no Listen has a socket on %s", a)
	}
	if _, err := connect(t, b).RTT(); err != nil {
		t.Fatalf("Connect: round trip: %v", err)
	}
}

// TestListenToken checks that a listening bus lets in a client over TCP with
// the token and refuses one with a wrong token or none.
func TestListenToken(t *testing.T) {
	b := start(t, Config{Dir: t.TempDir(), Token: testToken, Listen: "127.0.0.1:0"})
	if _, err := connect(t, b).RTT(); err != nil {
		t.Fatalf("Connect: round trip: %v", err)
	}
	u := b.ClientURL()
	if u == "" || strings.HasSuffix(u, ":0") || strings.HasSuffix(u, ":-1") {
		t.Fatalf("ClientURL() = %q, want the port the bus listens on", u)
	}
	dial := func(opts ...nats.Option) (*nats.Conn, error) {
		return nats.Connect(u, append(opts, nats.Timeout(5*time.Second), nats.MaxReconnects(0))...)
	}

	nc, err := dial(nats.Token(testToken))
	if err != nil {
		t.Fatalf("connect to %s with the right token: %v", u, err)
	}
	if _, err := nc.RTT(); err != nil {
		t.Fatalf("connect to %s with the right token: round trip: %v", u, err)
	}
	nc.Close()

	tests := []struct {
		name string
		opts []nats.Option
	}{
		{"wrong token", []nats.Option{nats.Token("not-" + testToken)}},
		{"no token", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := dial(tt.opts...)
			if err == nil {
				nc.Close()
				t.Fatalf("connect to %s succeeded, want it refused", u)
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("connect to %s: %v, want %v", u, err, nats.ErrAuthorization)
			}
		})
	}
}

func TestStartFailsWhenPortIsTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b, err := New(Config{Dir: t.TempDir(), Token: testToken, Listen: l.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	if err := b.Start(time.Second); err == nil {
		t.Fatalf("Start on %s, which is in use, succeeded", l.Addr())
	}
}

// TestStateSurvivesRestart is what lets `skiff server` stop and come back
// with every app as it was: JetStream state is on disk in Dir.
func TestStateSurvivesRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dir := t.TempDir()

	b, err := New(Config{Dir: dir, Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	nc, err := b.Connect("first")
	if err != nil {
		b.Shutdown()
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "apps"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "hello", []byte("world")); err != nil {
		t.Fatal(err)
	}
	// Close without draining: an acknowledged Put is all a role waits for.
	nc.Close()
	b.Shutdown()

	b = start(t, Config{Dir: dir, Token: testToken})
	js, err = jetstream.New(connect(t, b))
	if err != nil {
		t.Fatal(err)
	}
	kv, err = js.KeyValue(ctx, "apps")
	if err != nil {
		t.Fatalf("bucket after restart: %v", err)
	}
	e, err := kv.Get(ctx, "hello")
	if err != nil {
		t.Fatalf("key after restart: %v", err)
	}
	if string(e.Value()) != "world" || e.Revision() != 1 {
		t.Fatalf("after restart hello = %q at revision %d, want %q at revision 1", e.Value(), e.Revision(), "world")
	}
}

func TestJetStreamConfig(t *testing.T) {
	dir := t.TempDir()
	b := start(t, Config{Dir: dir, Token: testToken})
	if got := b.srv.Name(); got != "skiff" {
		t.Errorf("server name = %q, want the default %q", got, "skiff")
	}
	jsc := b.srv.JetStreamConfig()
	if jsc == nil {
		t.Fatal("JetStream is not enabled")
	}
	if !jsc.SyncAlways {
		t.Error("JetStream SyncAlways = false, want every write fsynced before it is acknowledged")
	}
	if rel, err := filepath.Rel(dir, jsc.StoreDir); err != nil || strings.HasPrefix(rel, "..") {
		t.Errorf("JetStream store dir = %s, want it inside %s", jsc.StoreDir, dir)
	}
}
