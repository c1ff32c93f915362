package usage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// LeaseName is the lease in the locks bucket that the folding meter holds.
const LeaseName = "usage"

// skew is how far a sample's own time may be from when the bus stored it
// (clocks of agents, routers and the bus apart, a publish retried): the
// fold of a span reads the streams from skew before it to skew after.
const skew = 10 * time.Minute

// Config configures a meter.
type Config struct {
	// Node names this meter as the lease's holder.
	Node string
	// Prices price the reports; zero prices are free. The currency is
	// skiff.DefaultCurrency when empty.
	Prices skiff.Prices
	// Tick is how often the leading meter looks for hours to fold
	// (default a minute).
	Tick time.Duration
	// Grace is how long after an hour ends its fold waits for the hour's
	// last samples (default 2 minutes). Until then reports read the
	// hour's samples.
	Grace time.Duration
	// Now tells the time (default time.Now); tests move it.
	Now    func() time.Time
	Logger *slog.Logger
}

// Meter is the usage meter of one node of the metrics role: it answers
// usage report requests, and, on the node holding the lease, folds every
// hour that is over into the usage_hours bucket.
type Meter struct {
	cfg       Config
	st        *store.Store
	log       *slog.Logger
	leading   atomic.Bool // the lease is held and folding, or another node leads
	answering atomic.Bool
	requests  sync.WaitGroup // answers under way
}

// New validates cfg and returns a meter.
func New(cfg Config, st *store.Store) (*Meter, error) {
	if cfg.Node == "" {
		return nil, errors.New("usage: Node is required")
	}
	if cfg.Prices.Currency == "" {
		cfg.Prices.Currency = skiff.DefaultCurrency
	}
	if err := cfg.Prices.Validate(); err != nil {
		return nil, fmt.Errorf("usage: prices: %w", err)
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Minute
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 2 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Meter{cfg: cfg, st: st, log: cfg.Logger.With("role", "usage")}, nil
}

// Ready reports whether the meter answers requests and either folds or
// stands by behind the node that does.
func (m *Meter) Ready() bool { return m.answering.Load() && m.leading.Load() }

// Run answers report requests and competes for the lease, folding hours
// while it holds it, until ctx ends; then it waits for the answers under
// way.
func (m *Meter) Run(ctx context.Context) error {
	sub, err := m.st.NC.QueueSubscribe(skiff.SubjectUsage, skiff.QueueUsage, func(msg *nats.Msg) {
		m.requests.Add(1)
		go func() {
			defer m.requests.Done()
			m.answer(ctx, msg)
		}()
	})
	if err != nil {
		return fmt.Errorf("usage: subscribe: %w", err)
	}
	m.answering.Store(true)
	m.st.Lead(ctx, LeaseName, m.cfg.Node, &m.leading, m.log, m.lead)
	m.answering.Store(false)
	_ = sub.Unsubscribe()
	m.requests.Wait()
	return nil
}

// answer answers one report request.
func (m *Meter) answer(ctx context.Context, msg *nats.Msg) {
	var req skiff.UsageRequest
	var ans skiff.UsageAnswer
	err := json.Unmarshal(msg.Data, &req)
	if err == nil {
		var r skiff.UsageReport
		if r, err = m.Report(ctx, req); err == nil {
			ans.Report = &r
		}
	}
	if err != nil {
		_, body := skiff.ErrorBody(store.Unavailable(err))
		ans.Error = &body
		m.log.Warn("usage report", "month", req.Month, "err", err)
	}
	data, _ := json.Marshal(ans)
	if err := msg.Respond(data); err != nil {
		m.log.Warn("answer a usage report", "err", err)
	}
}

// lead folds the hours that are over, every Tick, while the lease is held.
func (m *Meter) lead(ctx context.Context, lease *store.Lease) error {
	ctx, stop := lease.Hold(ctx)
	defer stop()
	m.leading.Store(true)
	t := time.NewTicker(m.cfg.Tick)
	defer t.Stop()
	for {
		if err := m.FoldDue(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("fold usage", "err", err)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

// folded is the first hour not folded yet; zero when none ever was.
func (m *Meter) folded(ctx context.Context) (time.Time, error) {
	rec, _, err := m.st.UsageHours.Get(ctx, skiff.UsageFoldedKey)
	if errors.Is(err, skiff.ErrNotFound) {
		return time.Time{}, nil
	}
	return rec.Hour, err
}

// FoldDue folds, in order, every hour from the first not folded yet to
// the last that ended Grace ago, and moves the mark past each. The first
// fold ever starts at the hour of the oldest sample.
func (m *Meter) FoldDue(ctx context.Context) error {
	next, err := m.folded(ctx)
	if err != nil {
		return err
	}
	if next.IsZero() {
		if next, err = m.oldest(ctx); err != nil {
			return err
		}
	}
	for ; !next.Add(time.Hour + m.cfg.Grace).After(m.cfg.Now()); next = next.Add(time.Hour) {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := m.FoldHour(ctx, next)
		if err != nil {
			return err
		}
		if _, err := m.st.UsageHours.Put(ctx, skiff.UsageFoldedKey, skiff.UsageHour{Hour: next.Add(time.Hour)}); err != nil {
			return fmt.Errorf("mark %s folded: %w", next.Format(time.RFC3339), err)
		}
		if n > 0 {
			m.log.Info("usage folded", "hour", next.Format("2006-01-02T15"), "apps", n)
		}
	}
	return nil
}

// oldest is the hour of the oldest sample in the streams, or the current
// hour when there is none.
func (m *Meter) oldest(ctx context.Context) (time.Time, error) {
	first := m.cfg.Now().UTC().Truncate(time.Hour)
	for _, name := range []string{skiff.StreamUsage, skiff.StreamMetrics} {
		s, err := m.st.JS.Stream(ctx, name)
		if err != nil {
			continue // no such stream yet: no samples
		}
		info, err := s.Info(ctx)
		if err != nil {
			return time.Time{}, fmt.Errorf("read stream %s: %w", name, err)
		}
		if t := info.State.FirstTime; info.State.Msgs > 0 && t.Before(first) {
			first = t.UTC().Truncate(time.Hour)
		}
	}
	return first, nil
}

// FoldHour folds the samples of the hour starting at hour into one record
// per app that used anything, and stores them, replacing what a fold of
// the same hour stored before: folding an hour again changes nothing
// unless samples came late. It returns how many apps it stored.
func (m *Meter) FoldHour(ctx context.Context, hour time.Time) (int, error) {
	hour = hour.UTC().Truncate(time.Hour)
	f, err := m.fold(ctx, hour, hour.Add(time.Hour), "")
	if err != nil {
		return 0, err
	}
	recs := f.Records()
	for _, r := range recs {
		if _, err := m.st.UsageHours.Put(ctx, skiff.UsageHourKey(r.App, r.Hour), r); err != nil {
			return 0, fmt.Errorf("store usage of %s: %w", r.App, err)
		}
	}
	return len(recs), nil
}

// fold reads the samples of the span [from, to) from the streams: every
// app's, or app's alone.
func (m *Meter) fold(ctx context.Context, from, to time.Time, app string) (*Fold, error) {
	f := NewFold(from, to)
	if app == "" {
		app = "*"
	}
	usage, router := []string{skiff.UsageSubject(app, ">")}, []string{skiff.MetricsSubject(app, "router", "*")}
	end := to.Add(skew)
	read := func(subject string, data []byte, stored time.Time) bool {
		if stored.After(end) {
			return false
		}
		f.Message(subject, data)
		return true
	}
	// An add-on's first measure of the span counts from its last before.
	if err := m.st.Scan(ctx, skiff.StreamUsage, usage, from.Add(-max(skew, MaxGap)), read); err != nil {
		return nil, err
	}
	if err := m.st.Scan(ctx, skiff.StreamMetrics, router, from.Add(-skew), read); err != nil {
		return nil, err
	}
	return f, nil
}
