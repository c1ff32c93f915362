package logretention

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/bus/bustest"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
	"github.com/skiff-paas/skiff/internal/testkit"
)

func TestIndexDue(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	x := &index{}
	// 100 lines of 100 bytes, a second apart, in chunks of 1000 bytes or 30 s.
	for i := range 100 {
		x.add(uint64(1000+i), t0.Add(time.Duration(i)*time.Second), 100, 1000, 30*time.Second)
	}
	if len(x.chunks) != 10 || x.bytes != 10000 {
		t.Fatalf("%d chunks of %d bytes, want 10 of 10000", len(x.chunks), x.bytes)
	}
	day := 24 * time.Hour
	for _, tc := range []struct {
		name string
		now  time.Time
		r    skiff.LogRetention
		want uint64
	}{
		{"within both", t0.Add(time.Minute), skiff.LogRetention{MaxAge: day, MaxSize: 10000}, 0},
		{"over size by a line: a chunk goes", t0.Add(time.Minute), skiff.LogRetention{MaxAge: day, MaxSize: 9900}, 1010},
		{"half the size", t0.Add(time.Minute), skiff.LogRetention{MaxAge: day, MaxSize: 5000}, 1050},
		{"chunks whose newest line is too old", t0.Add(time.Minute), skiff.LogRetention{MaxAge: 30 * time.Second, MaxSize: 1 << 30}, 1030},
		{"all too old", t0.Add(time.Hour), skiff.LogRetention{MaxAge: time.Minute, MaxSize: 1 << 30}, 1100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := x.due(tc.now, tc.r); got != tc.want {
				t.Fatalf("due = %d, want %d", got, tc.want)
			}
		})
	}
	x.trim(1050)
	if len(x.chunks) != 5 || x.bytes != 5000 || x.chunks[0].first != 1050 {
		t.Fatalf("after trim: %d chunks, %d bytes, first %d", len(x.chunks), x.bytes, x.chunks[0].first)
	}
}

// A noisy app is purged down to its size while a quiet app keeps every
// line; an app with a short age loses its lines as they age.
func TestJanitor(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, bustest.Start(t), nil, store.Options{LockTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]skiff.LogRetention{
		"noisy": {MaxSize: 64 << 10}, "quiet": {}, "brief": {MaxAge: time.Hour},
	} {
		if _, err := st.Apps.Create(ctx, name, skiff.App{Name: name, LogRetention: r}); err != nil {
			t.Fatal(err)
		}
	}
	line := strings.Repeat("x", 200)
	for range 100 {
		st.Log("quiet", skiff.SourceApp, "web.1", "quiet line")
		st.Log("brief", skiff.SourceApp, "web.1", "brief line")
		for range 10 {
			st.Log("noisy", skiff.SourceApp, "web.1", line)
		}
	}
	if err := st.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	var skew atomic.Int64
	j, err := New(Config{Node: "n1", Interval: 50 * time.Millisecond, ChunkBytes: 4 << 10, ChunkSpan: time.Second,
		Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }}, st)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { j.Run(rctx); close(done) }()
	defer func() { cancel(); <-done }()

	stream, err := st.JS.Stream(ctx, skiff.StreamLogs)
	if err != nil {
		t.Fatal(err)
	}
	count := func(app string) uint64 {
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(skiff.LogSubject(app, "*", ">")))
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, c := range info.State.Subjects {
			n += c
		}
		return n
	}
	// Each noisy line is its 200 bytes and its subject's 20; what is
	// kept is within a chunk (4 KiB) of the size.
	const perLine = 220
	eventually(t, 10*time.Second, "the noisy app purged to 64 KiB", func() bool {
		n := count("noisy")
		return n*perLine <= 64<<10 && n*perLine > 56<<10
	})
	if n := count("quiet"); n != 100 {
		t.Fatalf("the quiet app kept %d of its 100 lines", n)
	}
	if n := count("brief"); n != 100 {
		t.Fatalf("the brief app kept %d of its 100 lines before they were an hour old", n)
	}
	skew.Store(int64(2 * time.Hour))
	eventually(t, 10*time.Second, "the brief app's lines purged after an hour", func() bool { return count("brief") == 0 })
	if n := count("quiet"); n != 100 {
		t.Fatalf("the quiet app kept %d of its 100 lines (its age is 7 days)", n)
	}
}

var eventually = testkit.Eventually
