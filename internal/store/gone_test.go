package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// TestWatchGoneApps: apps destroyed while the role was down are found at
// the start, each once; apps destroyed later as they go.
func TestWatchGoneApps(t *testing.T) {
	s := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, n := range []string{"kept", "later"} {
		s.Apps.Put(ctx, n, skiff.App{Name: n})
	}
	gone := make(chan string, 8)
	go s.WatchGoneApps(ctx, func() ([]string, error) {
		return []string{"kept", "old", "later", "old"}, nil
	}, func(_ context.Context, app string) { gone <- app })
	if got := next(t, gone); got != "old" {
		t.Fatalf("gone at start: %s, want old", got)
	}
	if err := s.Apps.Delete(ctx, "later"); err != nil {
		t.Fatal(err)
	}
	if got := next(t, gone); got != "later" {
		t.Fatalf("gone: %s, want later", got)
	}
	select {
	case app := <-gone:
		t.Fatalf("%s reported gone again", app)
	case <-time.After(200 * time.Millisecond):
	}
}

func next(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("nothing reported gone")
		return ""
	}
}
