package store_test

import (
	"context"
	"testing"
	"time"
)

// TestHoldStopThenRelease stops Hold while a renewal may be under way:
// Release must still give the lease up.
func TestHoldStopThenRelease(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	for i := range 10 {
		l := s.Lease("hold", "me")
		if ok, err := l.Acquire(ctx); !ok || err != nil {
			t.Fatalf("try %d: acquire = %v, %v", i, ok, err)
		}
		_, stop := l.Hold(ctx)
		time.Sleep(s.LockTTL()/4 + time.Duration(i)*50*time.Microsecond) // about when the first renewal is sent
		stop()
		l.Release(ctx)
		if h, err := s.LeaseHolder(ctx, "hold"); h != "" || err != nil {
			t.Fatalf("try %d: after Release the lease is held by %q (%v)", i, h, err)
		}
	}
}

// TestHoldKeeps: a held lease outlives its TTL many times over, and
// nobody else can take it meanwhile.
func TestHoldKeeps(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	l := s.Lease("keep", "me")
	if ok, err := l.Acquire(ctx); !ok || err != nil {
		t.Fatalf("acquire = %v, %v", ok, err)
	}
	held, stop := l.Hold(ctx)
	defer stop()
	time.Sleep(3 * s.LockTTL())
	if held.Err() != nil {
		t.Fatalf("held ended: %v", context.Cause(held))
	}
	if h, err := s.LeaseHolder(ctx, "keep"); h != "me" || err != nil {
		t.Fatalf("after 3 TTLs the lease is held by %q (%v), want me", h, err)
	}
	if ok, _ := s.Lease("keep", "other").Acquire(ctx); ok {
		t.Fatal("another took a held lease")
	}
}
