package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/bus/bustest"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// The token bucket, on a clock the test moves: a burst passes, then the
// rate; what is dropped is reported once the flood ends, and every
// report interval while it lasts.
func TestFloodLimit(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	var published, reports []int
	n := 0
	f := newFloodLimit(10, 20, func() time.Time { return now }, func(string) { published = append(published, n) },
		func(d int) { reports = append(reports, d) })
	// The real timer must not fire while the test runs: the test ticks.
	f.quiet, f.each = time.Minute, 5*time.Minute
	line := func(k int) {
		for range k {
			n++
			f.line([]byte("x"))
		}
	}
	line(100)
	if len(published) != 20 || len(reports) != 0 {
		t.Fatalf("a burst of 100: %d published (want 20), reports %v", len(published), reports)
	}
	now = now.Add(time.Second)
	line(5)
	if len(published) != 25 {
		t.Fatalf("a second later: %d published, want 25 (10 more tokens)", len(published))
	}
	f.tick()
	if len(reports) != 0 {
		t.Fatalf("reported %v while the flood goes on", reports)
	}
	now = now.Add(time.Minute)
	f.tick()
	if len(reports) != 1 || reports[0] != 80 {
		t.Fatalf("after the flood: reports %v, want [80]", reports)
	}
	// A flood that lasts is reported every 5 minutes (f.each): 1000
	// lines a second for 12 minutes, at 10 lines a second.
	reports = nil
	for range 12 * 60 {
		now = now.Add(time.Second)
		line(1000)
	}
	if len(reports) != 2 {
		t.Fatalf("reports during a 12-minute flood: %v, want 2", reports)
	}
	f.flush()
	total := 0
	for _, r := range reports {
		total += r
	}
	if len(reports) != 3 || 80+total+len(published) != n {
		t.Fatalf("reports %v and %d published of %d lines", reports, len(published), n)
	}
}

// Through the agent's writers and a real bus: an instance that prints
// a flood is not held up, keeps its burst, and its logs say how many
// lines were dropped once it stops.
func TestFloodLimitLogs(t *testing.T) {
	st, err := store.Open(context.Background(), bustest.Start(t), nil, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ag := &Agent{st: st, cfg: Config{LogRate: 100, LogBurst: 50}}
	a := skiff.Assignment{App: "shop", Proc: "web", Index: 1}
	stdout, stderr := ag.outputs(a)
	start := time.Now()
	for i := range 5000 {
		w := stdout
		if i%2 == 1 {
			w = stderr
		}
		fmt.Fprintf(w, "line %d\n", i)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("writing 5000 lines took %s: the writer blocked", d)
	}
	// The flood has ended: it is reported without the writers closing.
	var lines []skiff.LogLine
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines = nil
		err := st.ReadLogs(context.Background(), store.LogQuery{App: "shop", Tail: 1000}, func(l skiff.LogLine) error {
			lines = append(lines, l)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) > 0 && lines[len(lines)-1].Source == skiff.SourcePlatform || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var app, dropped int
	for _, l := range lines {
		if l.Source == skiff.SourceApp {
			app++
		} else if _, err := fmt.Sscanf(l.Line, "%d lines dropped", &dropped); err != nil || l.Process != "web.1" ||
			!strings.HasSuffix(l.Line, " lines dropped (log rate limit of 100 lines/s)") {
			t.Fatalf("platform line %q of %s", l.Line, l.Process)
		}
	}
	if app < 50 || app > 200 || app+dropped != 5000 {
		t.Fatalf("%d lines logged and %d reported dropped, of 5000 (burst 50, 100 a second)", app, dropped)
	}
	stdout.Close()
	stderr.Close()
}
