// Package logretention keeps each app's logs within its retention
// (skiff.LogRetention: an age and a size, the platform's defaults unless
// the app has its own), so that a noisy app cannot push a quiet app's
// history out of the LOGS stream, whose own limits (MaxAge, MaxBytes)
// bound all apps together. It is part of the metrics role.
//
// A Janitor runs on every node with the role; the holder of the
// "logretention" lease acts. It reads the whole LOGS stream once, headers
// only (JetStream gives each line's size in Nats-Msg-Size), and then
// follows it, keeping for each app an index of its lines in chunks (a
// range of sequences, their bytes, first and last time; a chunk closes at
// ChunkBytes or ChunkSpan). Every Interval it drops each app's oldest
// chunks while the app's bytes are over its size or a chunk's newest
// line is older than its age, and purges the app's subjects below the
// first chunk it keeps (a JetStream purge by subject and sequence):
//
//	lease ─► watch apps (retentions) + ordered consumer of logs.> ─► index
//	tick ─► trim chunks the stream dropped itself ─► for each app:
//	        oldest chunks over its limits ─► purge logs.APP.> below them
//
// Sizes are within a chunk of exact, ages within ChunkSpan. A janitor that
// takes over builds its index anew; until it has read the stream through
// it knows fewer bytes than there are, so it purges too little, never too
// much.
package logretention

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// LeaseName is the lease in the locks bucket that the acting janitor holds.
const LeaseName = "logretention"

// Config configures a janitor.
type Config struct {
	// Node names this janitor as the lease's holder. Required.
	Node string
	// Defaults is the retention of apps without their own (default: the
	// store's, from the server's flags).
	Defaults skiff.LogRetention
	// Interval is how often apps' logs are purged (default 30 s).
	Interval time.Duration
	// ChunkBytes and ChunkSpan bound a chunk of the index (default
	// 16 KiB and 1 min): the precision of sizes and ages.
	ChunkBytes int64
	ChunkSpan  time.Duration
	// Now tells the time (default time.Now); tests move it.
	Now    func() time.Time
	Logger *slog.Logger
}

// Janitor purges apps' logs past their retention.
type Janitor struct {
	cfg   Config
	st    *store.Store
	log   *slog.Logger
	ready atomic.Bool
}

// New validates cfg and returns a janitor.
func New(cfg Config, st *store.Store) (*Janitor, error) {
	if cfg.Node == "" {
		return nil, errors.New("logretention: Node is required")
	}
	cfg.Defaults = cfg.Defaults.Or(st.LogDefaults())
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.ChunkBytes <= 0 {
		cfg.ChunkBytes = 16 << 10
	}
	if cfg.ChunkSpan <= 0 {
		cfg.ChunkSpan = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Janitor{cfg: cfg, st: st, log: cfg.Logger.With("role", "logretention")}, nil
}

// Ready reports whether the janitor acts, or stands by behind another.
func (j *Janitor) Ready() bool { return j.ready.Load() }

// Run competes for the lease and purges while holding it, until ctx ends.
func (j *Janitor) Run(ctx context.Context) error {
	j.st.Lead(ctx, LeaseName, j.cfg.Node, &j.ready, j.log, j.lead)
	return nil
}

// chunk is a run of an app's lines: its first and last sequence in the
// stream, their bytes, and the times of its first and last line.
type chunk struct {
	first, last uint64
	bytes       int64
	start, end  time.Time
}

// index is what the janitor knows of one app's lines, oldest first.
type index struct {
	chunks []chunk
	bytes  int64
}

// add records a line of size bytes at seq and t.
func (x *index) add(seq uint64, t time.Time, size, chunkBytes int64, span time.Duration) {
	if n := len(x.chunks); n > 0 {
		c := &x.chunks[n-1]
		if c.bytes < chunkBytes && t.Sub(c.start) < span {
			c.last, c.bytes, c.end = seq, c.bytes+size, t
			x.bytes += size
			return
		}
	}
	x.chunks = append(x.chunks, chunk{first: seq, last: seq, bytes: size, start: t, end: t})
	x.bytes += size
}

// trim forgets the chunks wholly below seq: they are gone from the stream.
func (x *index) trim(seq uint64) {
	i := 0
	for i < len(x.chunks) && x.chunks[i].last < seq {
		x.bytes -= x.chunks[i].bytes
		i++
	}
	x.chunks = x.chunks[i:]
}

// due returns the sequence below which the app's lines are to be purged
// to keep within r at now (0: none are).
func (x *index) due(now time.Time, r skiff.LogRetention) uint64 {
	bytes := x.bytes
	var below uint64
	for _, c := range x.chunks {
		if bytes <= r.MaxSize && now.Sub(c.end) <= r.MaxAge {
			break
		}
		bytes -= c.bytes
		below = c.last + 1
	}
	return below
}

// term is what the leader knows while it leads. mu guards apps and
// logs: the reader of the stream adds to them, the loop purges.
type term struct {
	mu   sync.Mutex
	apps map[string]skiff.LogRetention // each app's own
	logs map[string]*index
}

// lead keeps the index and purges until ctx ends or the lease is lost.
// The lease is renewed on its own clock, also while a purge takes long.
func (j *Janitor) lead(ctx context.Context, lease *store.Lease) error {
	ctx, stop := lease.Hold(ctx)
	defer stop()
	apps, err := j.st.Apps.Watch(ctx, "")
	if err != nil {
		return err
	}
	t := &term{apps: map[string]skiff.LogRetention{}, logs: map[string]*index{}}
	cons, err := j.st.JS.OrderedConsumer(ctx, skiff.StreamLogs, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"logs.>"}, HeadersOnly: true, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return err
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer it.Stop()
	wg.Add(1)
	go func() { defer wg.Done(); j.read(it, t) }()

	tick := time.NewTicker(j.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case c, ok := <-apps:
			if !ok {
				return errors.New("the watch of apps ended")
			}
			t.mu.Lock()
			switch {
			case c.Synced:
				j.ready.Store(true)
			case c.Deleted:
				delete(t.apps, c.Key)
				delete(t.logs, c.Key) // destroyed: its lines were purged
			default:
				t.apps[c.Key] = c.Value.LogRetention
			}
			t.mu.Unlock()
		case <-tick.C:
			if err := j.purge(ctx, t); err != nil && ctx.Err() == nil {
				j.log.Warn("purge logs", "err", err)
			}
		}
	}
}

// read adds every line of the stream to the index.
func (j *Janitor) read(it jetstream.MessagesContext, t *term) {
	for {
		m, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return
		}
		if err != nil {
			j.log.Debug("read logs", "err", err)
			continue
		}
		app, _, _, ok := skiff.ParseLogSubject(m.Subject())
		md, err := m.Metadata()
		if !ok || err != nil {
			continue
		}
		size, _ := strconv.ParseInt(m.Headers().Get("Nats-Msg-Size"), 10, 64)
		size += int64(len(m.Subject()))
		t.mu.Lock()
		x := t.logs[app]
		if x == nil {
			x = &index{}
			t.logs[app] = x
		}
		x.add(md.Sequence.Stream, md.Timestamp, size, j.cfg.ChunkBytes, j.cfg.ChunkSpan)
		t.mu.Unlock()
	}
}

// purge purges each app's lines past its retention.
func (j *Janitor) purge(ctx context.Context, t *term) error {
	stream, err := j.st.JS.Stream(ctx, skiff.StreamLogs)
	if err != nil {
		return err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return err
	}
	now := j.cfg.Now()
	due := map[string]uint64{}
	t.mu.Lock()
	for app, x := range t.logs {
		x.trim(info.State.FirstSeq) // dropped by the stream's own limits
		if below := x.due(now, t.apps[app].Or(j.cfg.Defaults)); below > 0 {
			due[app] = below
		}
	}
	t.mu.Unlock()
	for app, below := range due {
		err := stream.Purge(ctx, jetstream.WithPurgeSubject(skiff.LogSubject(app, "*", ">")), jetstream.WithPurgeSequence(below))
		if err != nil {
			return err
		}
		t.mu.Lock()
		if x := t.logs[app]; x != nil {
			x.trim(below)
		}
		t.mu.Unlock()
		j.log.Debug("purged old log lines", "app", app, "below", below)
	}
	return nil
}
