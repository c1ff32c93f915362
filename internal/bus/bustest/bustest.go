// Package bustest starts a real embedded bus for tests.
package bustest

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/skiff-paas/skiff/internal/bus"
)

// Start runs a bus in a temporary directory and returns a client connection
// to it. Both are closed when the test ends.
func Start(t testing.TB) *nats.Conn {
	t.Helper()
	return StartIn(t, t.TempDir())
}

// StartIn is Start with a JetStream directory of the caller's, so that a
// test can stop a bus and start another on the same state.
func StartIn(t testing.TB, dir string) *nats.Conn {
	t.Helper()
	b, err := bus.New(bus.Config{Dir: dir, Token: "test-token"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	nc, err := b.Connect(t.Name())
	if err != nil {
		b.Shutdown()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		nc.Close()
		b.Shutdown()
	})
	return nc
}
