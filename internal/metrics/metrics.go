package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// LeaseName is the lease in the locks bucket that the folding node holds.
const LeaseName = "metrics"

// Config configures a roller.
type Config struct {
	// Node names this roller as the lease's holder.
	Node string
	// Grace is how long after a step ends its samples may still come
	// (default 12 s: agents measure every 10 s, and a measure that ends
	// after the step may cover part of it). A step's points are written
	// Grace after it ends.
	Grace time.Duration
	// Tick is how often the leader closes steps and writes points
	// (default 1 s).
	Tick time.Duration
	// Now tells the time (default time.Now); tests set it to fold the
	// steps of hours in seconds.
	Now    func() time.Time
	Logger *slog.Logger
}

// Roller is the metrics role's part that rolls samples up into points.
type Roller struct {
	cfg   Config
	st    *store.Store
	log   *slog.Logger
	ready atomic.Bool
}

var (
	samplesFolded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "skiff", Subsystem: "metrics", Name: "samples_folded_total",
		Help: "Samples folded into points, by source (router, usage).",
	}, []string{"source"})
	samplesLate = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "skiff", Subsystem: "metrics", Name: "samples_late_total",
		Help: "Samples, or parts of usage samples, dropped because their step had closed.",
	})
	pointsWritten = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "skiff", Subsystem: "metrics", Name: "points_written_total",
		Help: "Points written, by resolution (10s, 1m, 1h).",
	}, []string{"resolution"})
)

func init() { prometheus.MustRegister(samplesFolded, samplesLate, pointsWritten) }

// New validates cfg and returns a roller.
func New(cfg Config, st *store.Store) (*Roller, error) {
	if cfg.Node == "" {
		return nil, errors.New("metrics: Node is required")
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 12 * time.Second
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Roller{cfg: cfg, st: st, log: cfg.Logger.With("role", "metrics")}, nil
}

// Ready reports whether the roller is either leading, restored from the
// streams, or standing by behind another leader.
func (r *Roller) Ready() bool { return r.ready.Load() }

// Run competes for the lease and folds while holding it, until ctx ends.
func (r *Roller) Run(ctx context.Context) error {
	r.st.Lead(ctx, LeaseName, r.cfg.Node, &r.ready, r.log, r.lead)
	return nil
}

// source is a stream of samples the leader reads.
type source struct {
	name, stream, filter string
	// pos is the latest time of the samples taken (samples are
	// published as they are taken, so in about that order); live is
	// set when none was left to deliver after the last.
	pos  time.Time
	live bool
}

// delivery is a message of source src.
type delivery struct {
	src int
	msg jetstream.Msg
}

// lead folds until ctx ends or the lease is lost. The lease is renewed
// on its own clock, also while the term restores or writes.
func (r *Roller) lead(ctx context.Context, lease *store.Lease) error {
	ctx, stop := lease.Hold(ctx)
	defer stop()
	f, err := r.restore(ctx)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Samples of the steps from done[0] on are all published after it
	// began; a margin covers clocks a little apart.
	from := f.done[0].Add(-r.cfg.Grace - skiff.SampleInterval)
	sources := []*source{
		{name: "router", stream: skiff.StreamMetrics, filter: skiff.MetricsSubject("*", "router", "*")},
		{name: "usage", stream: skiff.StreamUsage, filter: skiff.UsageSubject("*", "*")},
	}
	deliveries := make(chan delivery, 256)
	failed := make(chan error, len(sources))
	for i, s := range sources {
		cons, err := r.st.JS.OrderedConsumer(lctx, s.stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{s.filter}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &from,
		})
		if err != nil {
			return fmt.Errorf("read %s samples: %w", s.name, err)
		}
		info, err := cons.Info(lctx)
		if err != nil {
			return fmt.Errorf("read %s samples: %w", s.name, err)
		}
		s.pos, s.live = from, info.NumPending == 0
		it, err := cons.Messages()
		if err != nil {
			return fmt.Errorf("read %s samples: %w", s.name, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer it.Stop()
			for {
				m, err := it.Next(jetstream.NextContext(lctx))
				if err != nil {
					if lctx.Err() == nil {
						failed <- fmt.Errorf("read %s samples: %w", s.name, err)
					}
					return
				}
				select {
				case deliveries <- delivery{i, m}:
				case <-lctx.Done():
					return
				}
			}
		}()
	}
	r.ready.Store(true)
	r.log.Info("folding", "from", f.done[0])

	tick := time.NewTicker(r.cfg.Tick)
	defer tick.Stop()
	unwritten := make([][]skiff.MetricsPoint, len(f.res))
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case err := <-failed:
			return err
		case d := <-deliveries:
			r.take(f, sources[d.src], d.msg)
		case <-tick.C:
			for i, points := range f.advance(r.watermark(sources)) {
				unwritten[i] = append(unwritten[i], points...)
			}
			if err := r.write(ctx, f.res, unwritten); err != nil {
				return err
			}
		}
	}
}

// take folds one sample.
func (r *Roller) take(f *folder, s *source, m jetstream.Msg) {
	if md, err := m.Metadata(); err == nil {
		s.live = md.NumPending == 0
	}
	late := f.late
	var at time.Time
	switch s.name {
	case "router":
		var x skiff.RouterSample
		if json.Unmarshal(m.Data(), &x) != nil || x.App == "" {
			return
		}
		f.addRouter(x)
		at = x.Time
	case "usage":
		var x skiff.UsageSample
		if json.Unmarshal(m.Data(), &x) != nil || x.App == "" {
			return
		}
		f.addUsage(x)
		at = x.Time
	}
	s.pos = maxTime(s.pos, at)
	samplesFolded.WithLabelValues(s.name).Inc()
	samplesLate.Add(float64(f.late - late))
}

// watermark is the time up to which every sample has come, but for
// those Grace late: a source still catching up has come up to the
// latest sample it delivered, one caught up up to now.
func (r *Roller) watermark(sources []*source) time.Time {
	wm := r.cfg.Now()
	for _, s := range sources {
		if !s.live && s.pos.Before(wm) {
			wm = s.pos
		}
	}
	return wm.Add(-r.cfg.Grace)
}

// write writes the points closed, finest first, and empties the lists it
// wrote. A failure to write leaves the rest for the next tick; losing the
// lease (which ends ctx) ends the term.
func (r *Roller) write(ctx context.Context, res []skiff.Resolution, unwritten [][]skiff.MetricsPoint) error {
	for i, points := range unwritten {
		if len(points) == 0 {
			continue
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if err := r.st.WritePoints(ctx, res[i], points); err != nil {
			r.log.Warn("write points; trying again", "resolution", res[i].Name, "points", len(points), "err", err)
			return nil
		}
		pointsWritten.WithLabelValues(res[i].Name).Add(float64(len(points)))
		unwritten[i] = nil
	}
	return nil
}

// restore makes the folder a new term starts from: each resolution's
// steps are done up to the last point written (whose step is folded
// again), and the open steps of the coarser resolutions are reloaded from
// the finer points written since.
func (r *Roller) restore(ctx context.Context) (*folder, error) {
	res := skiff.Resolutions
	now := r.cfg.Now().Add(-r.cfg.Grace)
	done := make([]time.Time, len(res))
	for i, rs := range res {
		p, ok, err := r.st.LastPoint(ctx, rs)
		if err != nil {
			return nil, err
		}
		floor := now.Add(-rs.Keep) // the finest points, a fresh start
		switch {
		case ok:
			done[i] = p.Time
		case i == 0:
			done[i] = now
		default:
			done[i] = done[i-1]
		}
		if i > 0 {
			// Nothing older than the finer points kept can be reloaded.
			floor = done[i-1].Add(-res[i-1].Keep)
		}
		done[i] = maxTime(done[i], floor)
	}
	f := newFolder(res, done)
	for i := 1; i < len(res); i++ {
		// A point written twice (by two leaders, apart by more than
		// the streams remember message IDs) counts once.
		points := map[string]skiff.MetricsPoint{}
		err := r.st.ScanPoints(ctx, res[i-1], "*", f.done[i], func(p skiff.MetricsPoint) {
			if !p.Time.Before(f.done[i]) && p.Time.Before(f.done[i-1]) {
				points[p.App+"@"+strconv.FormatInt(p.Time.Unix(), 10)] = p
			}
		})
		if err != nil {
			return nil, err
		}
		for _, p := range points {
			f.addPoint(i, p)
		}
	}
	return f, nil
}
