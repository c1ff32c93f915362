package cron_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/skiff-paas/skiff/internal/bus/bustest"
	"github.com/skiff-paas/skiff/internal/cron"
	"github.com/skiff-paas/skiff/internal/oneoff"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
	"github.com/skiff-paas/skiff/internal/testkit"
)

const tick = 10 * time.Millisecond

// clock is the time the runners see; the test moves it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = at(s)
}

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// world is a real bus and store, a clock, and an agent that takes run
// requests from the agents' queue and only records them.
type world struct {
	t     *testing.T
	st    *store.Store
	clock *clock
	log   *testkit.SyncBuffer

	mu   sync.Mutex
	runs []oneoff.Request
}

func newWorld(t *testing.T) *world {
	t.Helper()
	st, err := store.Open(context.Background(), bustest.Start(t), nil, store.Options{LockTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, st: st, clock: &clock{}, log: &testkit.SyncBuffer{}}
}

// agent answers run requests as an agent would, without running anything.
func (w *world) agent() {
	sub, err := w.st.NC.QueueSubscribe(skiff.SubjectRun, skiff.QueueAgents, func(m *nats.Msg) {
		var req oneoff.Request
		if err := json.Unmarshal(m.Data, &req); err != nil {
			w.t.Error(err)
			return
		}
		w.mu.Lock()
		w.runs = append(w.runs, req)
		n := len(w.runs)
		w.mu.Unlock()
		data, _ := json.Marshal(oneoff.Started{Name: fmt.Sprintf("run.%d", 1000+n), Node: "agent-node", Release: 1})
		_ = m.Respond(data)
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = sub.Unsubscribe() })
}

// started counts the detached runs of command that agents were asked for.
func (w *world) started(app, command string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, r := range w.runs {
		if r.App == app && r.Command == command {
			if !r.Detach {
				w.t.Errorf("run of %s not detached", command)
			}
			n++
		}
	}
	return n
}

// deploy makes release version of app, with jobs, its current one.
func (w *world) deploy(app string, version int, jobs ...skiff.CronJob) {
	w.t.Helper()
	ctx := context.Background()
	if _, err := w.st.Releases.Put(ctx, skiff.ReleaseKey(app, version), skiff.Release{App: app, Version: version, Cron: jobs}); err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.st.Apps.Upsert(ctx, app, func(a *skiff.App) error {
		a.Name, a.Current = app, version
		return nil
	}); err != nil {
		w.t.Fatal(err)
	}
}

// runner starts a runner of node; stop cancels it and waits for it.
func (w *world) runner(node string, cfg cron.Config) (stop func()) {
	w.t.Helper()
	cfg.Node, cfg.Tick, cfg.Now = node, tick, w.clock.now
	cfg.Logger = slog.New(slog.NewTextHandler(w.log, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", node)
	r, err := cron.New(cfg, w.st)
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				w.t.Errorf("runner %s: %v", node, err)
			}
		})
	}
	w.t.Cleanup(stop)
	return stop
}

func (w *world) last(app string, job skiff.CronJob) (skiff.CronRun, bool) {
	r, _, err := w.st.Cron.Get(context.Background(), skiff.CronLastKey(app, job.ID()))
	return r, err == nil
}

func (w *world) claimed(app string, job skiff.CronJob, slot string) bool {
	_, _, err := w.st.Cron.Get(context.Background(), skiff.CronClaimKey(app, job.ID(), at(slot).Unix()))
	return err == nil
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settle lets many ticks pass, to show that something does not happen.
func settle() { time.Sleep(50 * tick) }

var (
	everyMinute = skiff.CronJob{Schedule: "* * * * *", Command: "echo tick"}
	everyTwo    = skiff.CronJob{Schedule: "*/2 * * * *", Command: "echo two"}
)

// TestCompetingRunners: two runners, one slot after another; each slot
// of each job starts once, as a detached one-off, with its line in the
// app's logs, its event and its last run recorded.
func TestCompetingRunners(t *testing.T) {
	w := newWorld(t)
	w.agent()
	w.deploy("shop", 1, everyMinute, everyTwo)
	w.clock.set("2025-03-14 10:00:05")
	w.runner("a", cron.Config{})
	w.runner("b", cron.Config{})

	want := func(tick, two int) {
		t.Helper()
		eventually(t, 10*time.Second, fmt.Sprintf("%d and %d runs", tick, two), func() bool {
			return w.started("shop", "echo tick") == tick && w.started("shop", "echo two") == two
		})
		settle()
		if got1, got2 := w.started("shop", "echo tick"), w.started("shop", "echo two"); got1 != tick || got2 != two {
			t.Fatalf("runs: %d of every minute, %d of every two; want %d and %d", got1, got2, tick, two)
		}
	}
	want(1, 1)
	w.clock.set("2025-03-14 10:00:29") // the same slot, later in its window
	want(1, 1)
	w.clock.set("2025-03-14 10:01:00")
	want(2, 1)
	w.clock.set("2025-03-14 10:02:10")
	want(3, 2)

	last, ok := w.last("shop", everyMinute)
	if !ok || !last.Slot.Equal(at("2025-03-14 10:02:00")) || last.Name == "" || last.Node != "agent-node" || last.Index != 1 ||
		last.Fencing == 0 || last.Runner == "" || last.Release != 1 || last.Error != "" {
		t.Errorf("last run = %+v, %v", last, ok)
	}
	if !w.claimed("shop", everyTwo, "2025-03-14 10:00:00") || w.claimed("shop", everyTwo, "2025-03-14 10:01:00") {
		t.Errorf("claims of every two minutes are not those of its slots")
	}

	// The app's logs say what started, as which run; so do its events.
	var lines []string
	eventually(t, 5*time.Second, "the platform lines", func() bool {
		lines = nil
		_ = w.st.ReadLogs(context.Background(), store.LogQuery{App: "shop", Tail: 100}, func(l skiff.LogLine) error {
			if l.Source == skiff.SourcePlatform && l.Process == "cron" {
				lines = append(lines, l.Line)
			}
			return nil
		})
		return len(lines) == 5
	})
	if !strings.HasPrefix(lines[0], "Scheduled job ") || !strings.Contains(strings.Join(lines, "\n"), "Scheduled job 2 started: echo two as run.10") {
		t.Errorf("platform lines:\n%s", strings.Join(lines, "\n"))
	}
	stream, err := w.st.JS.Stream(context.Background(), skiff.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(context.Background(), skiff.EventSubject("shop", skiff.EventCronStarted))
	if err != nil {
		t.Fatal(err)
	}
	var ev skiff.Event
	if err := json.Unmarshal(msg.Data, &ev); err != nil || ev.Type != skiff.EventCronStarted || ev.Component != "cron" ||
		!strings.HasPrefix(ev.Instance, "run.") || !strings.Contains(ev.Message, "started: echo") {
		t.Errorf("last event: %+v, %v", ev, err)
	}
}

// TestTakeOver: the leader dies after starting a slot; the other runner
// takes over within the slot's window and does not start it again, but
// starts the next.
func TestTakeOver(t *testing.T) {
	w := newWorld(t)
	w.agent()
	w.deploy("shop", 1, everyMinute)
	w.clock.set("2025-03-14 10:00:01")
	stopA := w.runner("a", cron.Config{})
	eventually(t, 10*time.Second, "a to start the slot", func() bool { return w.started("shop", "echo tick") == 1 })
	w.runner("b", cron.Config{})
	eventually(t, 5*time.Second, "the first run recorded as a's", func() bool {
		last, _ := w.last("shop", everyMinute)
		return last.Runner == "a"
	})

	stopA()
	// A job of another app, due in the same slot, shows b leading and
	// looking at this slot: by then it has seen shop's claimed.
	witness := skiff.CronJob{Schedule: "* * * * *", Command: "echo witness"}
	w.deploy("other", 1, witness)
	eventually(t, 10*time.Second, "b to take over", func() bool { return w.started("other", "echo witness") == 1 })
	settle()
	if n := w.started("shop", "echo tick"); n != 1 {
		t.Fatalf("the slot ran %d times", n)
	}
	if last, _ := w.last("other", witness); last.Runner != "b" {
		t.Fatalf("witness run by %q, want b", last.Runner)
	}

	w.clock.set("2025-03-14 10:01:00")
	eventually(t, 10*time.Second, "the next slot, run by b", func() bool {
		last, _ := w.last("shop", everyMinute)
		return w.started("shop", "echo tick") == 2 && last.Runner == "b" && last.Slot.Equal(at("2025-03-14 10:01:00"))
	})
}

// TestLostLeaseStartsNothing: a runner whose lease was taken starts no
// slot, and runs it once it holds the lease again.
func TestLostLeaseStartsNothing(t *testing.T) {
	w := newWorld(t)
	w.agent()
	w.deploy("shop", 1, everyMinute)
	w.clock.set("2025-03-14 10:00:01")
	w.runner("a", cron.Config{})
	eventually(t, 10*time.Second, "the first slot", func() bool { return w.started("shop", "echo tick") == 1 })

	ctx := context.Background()
	locks, err := w.st.JS.KeyValue(ctx, skiff.BucketLocks)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := locks.Put(ctx, cron.LeaseName, []byte(`{"holder":"thief"}`)); err != nil {
		t.Fatal(err)
	}
	w.clock.set("2025-03-14 10:01:00")
	eventually(t, 10*time.Second, "a to see the lease lost", func() bool { return strings.Contains(w.log.String(), "lost the cron lease") })
	settle()
	if n := w.started("shop", "echo tick"); n != 1 || w.claimed("shop", everyMinute, "2025-03-14 10:01:00") {
		t.Fatalf("without the lease: %d runs, claimed %v", n, w.claimed("shop", everyMinute, "2025-03-14 10:01:00"))
	}

	if err := locks.Delete(ctx, cron.LeaseName); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the slot once the lease is back", func() bool { return w.started("shop", "echo tick") == 2 })
}

// TestMissedSlotsAreSkipped: slots missed while nobody led do not run
// late, one or many; the next one does.
func TestMissedSlotsAreSkipped(t *testing.T) {
	w := newWorld(t)
	w.agent()
	w.deploy("shop", 1, everyMinute)
	w.clock.set("2025-03-14 10:05:31") // 10:05 began 31 s ago
	w.runner("a", cron.Config{})
	eventually(t, 10*time.Second, "a to lead", func() bool { return strings.Contains(w.log.String(), "schedules loaded") })
	settle()
	if n := w.started("shop", "echo tick"); n != 0 {
		t.Fatalf("a slot past its window ran (%d)", n)
	}
	w.clock.set("2025-03-14 10:06:02")
	eventually(t, 10*time.Second, "the next slot", func() bool { return w.started("shop", "echo tick") == 1 })
	// An hour without time passing, as for a runner that was stuck: only
	// the slot of now runs.
	w.clock.set("2025-03-14 11:06:10")
	eventually(t, 10*time.Second, "the slot after the gap", func() bool { return w.started("shop", "echo tick") == 2 })
	settle()
	if n := w.started("shop", "echo tick"); n != 2 {
		t.Fatalf("%d runs after the gap, want 2", n)
	}
	if last, _ := w.last("shop", everyMinute); !last.Slot.Equal(at("2025-03-14 11:06:00")) {
		t.Fatalf("last slot %s", last.Slot)
	}
}

// TestSchedulesFollowReleases: a deploy that keeps a job in the middle of
// its slot does not run it again; one that drops it stops it; a release
// rolled back to brings its schedule back.
func TestSchedulesFollowReleases(t *testing.T) {
	w := newWorld(t)
	w.agent()
	w.deploy("shop", 1, everyMinute)
	w.clock.set("2025-03-14 10:00:01")
	w.runner("a", cron.Config{})
	eventually(t, 10*time.Second, "the first slot", func() bool { return w.started("shop", "echo tick") == 1 })

	hourly := skiff.CronJob{Schedule: "@hourly", Command: "echo hourly"}
	w.deploy("shop", 2, hourly, everyMinute) // reordered, the same job
	w.deploy("other", 1, skiff.CronJob{Schedule: "* * * * *", Command: "echo witness"})
	eventually(t, 10*time.Second, "the witness", func() bool { return w.started("other", "echo witness") == 1 })
	settle()
	if n := w.started("shop", "echo tick"); n != 1 {
		t.Fatalf("a redeploy ran the slot again: %d runs", n)
	}

	w.deploy("shop", 3) // no jobs
	w.clock.set("2025-03-14 10:01:00")
	eventually(t, 10*time.Second, "the witness's next slot", func() bool { return w.started("other", "echo witness") == 2 })
	settle()
	if n := w.started("shop", "echo tick"); n != 1 {
		t.Fatalf("a job no longer in the release ran: %d runs", n)
	}

	w.deploy("shop", 2, hourly, everyMinute) // rolled back to v2's jobs
	eventually(t, 10*time.Second, "the job back, as job 2 of v2", func() bool {
		last, _ := w.last("shop", everyMinute)
		return w.started("shop", "echo tick") == 2 && last.Index == 2 && last.Release == 2
	})

	// An app destroyed takes its records with it.
	if err := w.st.Apps.Delete(context.Background(), "shop"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the last run forgotten", func() bool { _, ok := w.last("shop", everyMinute); return !ok })
}

// TestFailedStart: with no agent, the slot is claimed and not retried;
// the failure is in the logs and in the last run.
func TestFailedStart(t *testing.T) {
	w := newWorld(t)
	w.deploy("shop", 1, everyMinute)
	w.clock.set("2025-03-14 10:00:01")
	w.runner("a", cron.Config{Window: time.Second, ClaimTTL: 2 * time.Second})
	var last skiff.CronRun
	eventually(t, 10*time.Second, "the failure recorded", func() bool {
		var ok bool
		last, ok = w.last("shop", everyMinute)
		return ok
	})
	if !strings.Contains(last.Error, "no agent is running") || last.Name != "" {
		t.Fatalf("last run %+v", last)
	}
	stream, err := w.st.JS.Stream(context.Background(), skiff.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the cron.failed event", func() bool {
		msg, err := stream.GetLastMsgForSubject(context.Background(), skiff.EventSubject("shop", skiff.EventCronFailed))
		return err == nil && strings.Contains(string(msg.Data), "Scheduled job 1 did not start: echo tick")
	})
	// The claim expires by its TTL.
	eventually(t, 15*time.Second, "the claim to expire", func() bool { return !w.claimed("shop", everyMinute, "2025-03-14 10:00:00") })
	if _, ok := w.last("shop", everyMinute); !ok {
		t.Fatal("the last run expired with the claim")
	}
}

func TestNewChecksConfig(t *testing.T) {
	for _, cfg := range []cron.Config{{}, {Node: "n", Window: time.Hour}} {
		if _, err := cron.New(cfg, nil); err == nil {
			t.Errorf("New(%+v) took it", cfg)
		}
	}
	if _, err := cron.New(cron.Config{Node: "n"}, nil); err != nil {
		t.Errorf("New with defaults: %v", err)
	}
}
