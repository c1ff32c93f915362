package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/bus/bustest"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

func open(t *testing.T) *store.Store {
	t.Helper()
	nc := bustest.Start(t)
	box, err := secret.New(make([]byte, secret.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(context.Background(), nc, box, store.Options{LockTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBucketCreateUpdateDelete(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	if _, err := s.Apps.Create(ctx, "one", skiff.App{Name: "one"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apps.Create(ctx, "one", skiff.App{Name: "one"}); !errors.Is(err, skiff.ErrConflict) {
		t.Fatalf("second create: err = %v, want ErrConflict", err)
	}
	if _, _, err := s.Apps.Get(ctx, "two"); !errors.Is(err, skiff.ErrNotFound) {
		t.Fatalf("get missing: err = %v, want ErrNotFound", err)
	}

	// Concurrent updates through Update all land: none is lost to a race.
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := s.Apps.Update(ctx, "one", func(a *skiff.App) error { a.Current++; return nil }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	a, rev, err := s.Apps.Get(ctx, "one")
	if err != nil || a.Current != 20 {
		t.Fatalf("after 20 concurrent updates Current = %d, %v", a.Current, err)
	}
	if _, err := s.Apps.UpdateAt(ctx, "one", a, rev-1); !errors.Is(err, skiff.ErrConflict) {
		t.Fatalf("stale UpdateAt: err = %v, want ErrConflict", err)
	}
	if err := s.Apps.DeleteAt(ctx, "one", rev-1); !errors.Is(err, skiff.ErrConflict) {
		t.Fatalf("stale DeleteAt: err = %v, want ErrConflict", err)
	}
	if err := s.Apps.Delete(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apps.Create(ctx, "one", skiff.App{Name: "one"}); err != nil {
		t.Fatalf("create after delete: %v", err)
	}
}

func TestWatchDeliversExistingThenSyncedThenChanges(t *testing.T) {
	s := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, n := range []string{"a1", "a2"} {
		s.Apps.Put(ctx, n, skiff.App{Name: n})
	}
	ch, err := s.Apps.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for c := range ch {
		if c.Synced {
			break
		}
		seen = append(seen, c.Key)
	}
	if len(seen) != 2 {
		t.Fatalf("before sync saw %v", seen)
	}
	s.Apps.Delete(ctx, "a1")
	c := <-ch
	if c.Key != "a1" || !c.Deleted {
		t.Fatalf("got %+v, want delete of a1", c)
	}
	list, err := s.Apps.List(ctx, "")
	if err != nil || len(list) != 1 || list[0].Key != "a2" {
		t.Fatalf("List = %+v, %v", list, err)
	}
}

func TestConfigIsSealedAndVersioned(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	vars, v, err := s.Config(ctx, "app")
	if err != nil || v != 0 || len(vars) != 0 {
		t.Fatalf("empty config = %v, %d, %v", vars, v, err)
	}
	_, v, changed, err := s.UpdateConfig(ctx, "app", func(m map[string]string) error { m["SECRET"] = "hunter2"; return nil })
	if err != nil || v != 1 || !changed {
		t.Fatalf("update = %d, %v, %v", v, changed, err)
	}
	_, v, changed, err = s.UpdateConfig(ctx, "app", func(m map[string]string) error { return store.ErrNoChange })
	if err != nil || v != 1 || changed {
		t.Fatalf("no-change update = %d, %v, %v", v, changed, err)
	}
	rec, _, _ := s.Configs.Get(ctx, "app")
	if len(rec.Sealed) == 0 || bytes.Contains(rec.Sealed, []byte("hunter2")) {
		t.Fatal("config stored in the clear")
	}
	vars, _, _ = s.Config(ctx, "app")
	if vars["SECRET"] != "hunter2" {
		t.Fatalf("config = %v", vars)
	}
}

func TestCreateReleaseNumbersConcurrently(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := s.CreateRelease(ctx, skiff.Release{App: "app", Description: fmt.Sprint(i)}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	rels, err := s.ListReleases(ctx, "app")
	if err != nil || len(rels) != 10 {
		t.Fatalf("ListReleases = %d, %v", len(rels), err)
	}
	for i, r := range rels {
		if r.Version != i+1 || r.Status != skiff.ReleasePending {
			t.Fatalf("release %d = v%d %s", i, r.Version, r.Status)
		}
	}
	if _, _, err := s.Release(ctx, "app", 11); skiff.KindOf(err) != skiff.KindNotFound {
		t.Fatalf("missing release: kind %s", skiff.KindOf(err))
	}
}

func TestBaseRelease(t *testing.T) {
	rels := []skiff.Release{
		{Version: 1, Status: skiff.ReleaseSucceeded},
		{Version: 2, Status: skiff.ReleaseSucceeded},
		{Version: 3, Status: skiff.ReleaseFailed},
	}
	if r, ok := store.BaseRelease(rels, 2); !ok || r.Version != 2 {
		t.Fatalf("base = v%d %v, want v2", r.Version, ok)
	}
	rels = append(rels, skiff.Release{Version: 4, Status: skiff.ReleaseDeploying})
	if r, ok := store.BaseRelease(rels, 2); !ok || r.Version != 4 {
		t.Fatalf("base = v%d %v, want the deploying v4", r.Version, ok)
	}
	if _, ok := store.BaseRelease(rels[2:3], 0); ok {
		t.Fatal("an app with only a failed release has a base")
	}
}

func TestReadLogsTailAndFollow(t *testing.T) {
	s := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 1; i <= 3000; i++ {
		s.Log("app", skiff.SourceApp, fmt.Sprintf("web.%d", i%2+1), fmt.Sprintf("line %d", i))
		if i%500 == 0 {
			s.Log("other", skiff.SourceApp, "web.1", "noise")
		}
	}
	s.Emit(skiff.Event{App: "app", Type: skiff.EventScaled, Message: "Scaled", Component: "api"})
	s.NC.Flush()

	read := func(q store.LogQuery) []skiff.LogLine {
		var out []skiff.LogLine
		waitFor(t, 5*time.Second, func() bool {
			out = nil
			if err := s.ReadLogs(ctx, q, func(l skiff.LogLine) error { out = append(out, l); return nil }); err != nil {
				t.Fatal(err)
			}
			return len(out) > 0 && (out[len(out)-1].Line == "Scaled" || q.Process != "")
		})
		return out
	}
	tail := read(store.LogQuery{App: "app", Tail: 5})
	if len(tail) != 5 || tail[0].Line != "line 2997" || tail[4].Source != skiff.SourcePlatform {
		t.Fatalf("tail 5 = %+v", tail)
	}
	web1 := read(store.LogQuery{App: "app", Tail: 2, Process: "web.1"})
	if len(web1) != 2 || web1[1].Line != "line 3000" || web1[1].Process != "web.1" {
		t.Fatalf("tail of web.1 = %+v", web1)
	}
	all := read(store.LogQuery{App: "app", Tail: 100000})
	if len(all) != 3001 {
		t.Fatalf("whole history = %d lines, want 3001", len(all))
	}

	got := make(chan skiff.LogLine, 10)
	fctx, fcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- s.ReadLogs(fctx, store.LogQuery{App: "app", Follow: true}, func(l skiff.LogLine) error { got <- l; return nil })
	}()
	time.Sleep(200 * time.Millisecond) // the follower starts at new lines; give it time to subscribe
	s.Log("app", skiff.SourceApp, "web.1", "live")
	select {
	case l := <-got:
		if l.Line != "live" {
			t.Fatalf("followed %q", l.Line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not deliver a new line")
	}
	fcancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestLeaseIsExclusiveAndExpires(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	a, b := s.Lease("scheduler", "node-a"), s.Lease("scheduler", "node-b")
	if ok, err := a.Acquire(ctx); !ok || err != nil {
		t.Fatalf("a acquire = %v, %v", ok, err)
	}
	if ok, _ := b.Acquire(ctx); ok {
		t.Fatal("b acquired a held lease")
	}
	if err := a.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	// A second life of the same holder takes the lease over at once.
	a2 := s.Lease("scheduler", "node-a")
	if ok, _ := a2.Acquire(ctx); !ok {
		t.Fatal("the same holder could not take its lease back")
	}
	if err := a.Renew(ctx); err == nil {
		t.Fatal("the old handle renewed a lease taken over by a newer one")
	}
	// Without renewals the lease expires and another holder gets it.
	waitFor(t, 10*time.Second, func() bool { ok, _ := b.Acquire(ctx); return ok })
	if b.Revision() == 0 {
		t.Fatal("held lease has no fencing revision")
	}
	b.Release(ctx)
	if ok, _ := a.Acquire(ctx); !ok {
		t.Fatal("released lease could not be acquired")
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestUnavailable(t *testing.T) {
	for _, err := range []error{context.DeadlineExceeded, fmt.Errorf("watch releases: %w", context.DeadlineExceeded), nats.ErrTimeout,
		jetstream.ErrNoStreamResponse, nats.ErrNoResponders} {
		if k := skiff.KindOf(store.Unavailable(err)); k != skiff.KindUnavailable {
			t.Errorf("%v: kind %s, want unavailable", err, k)
		}
	}
	for _, err := range []error{errors.New("disk full"), skiff.ErrConflict, skiff.Errorf(skiff.KindInvalid, "", "bad")} {
		if got := store.Unavailable(err); got != err {
			t.Errorf("%v became %v", err, got)
		}
	}
}
