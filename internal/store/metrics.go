package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// pointDuplicates is how long a point stream remembers the IDs of points
// written: a leader that takes over writes the last step again, and the
// copy is dropped. Queries also keep one point per time, for copies
// written after the window (a leader away for longer).
const pointDuplicates = 10 * time.Minute

// metricsStreams are the METRICS stream of raw samples and a stream of
// points per resolution, each with the MaxAge of its resolution: JetStream
// ages a stream out as a whole, cheaply, by deleting old blocks.
func metricsStreams(opt Options) []jetstream.StreamConfig {
	out := []jetstream.StreamConfig{{
		Name:        skiff.StreamMetrics,
		Subjects:    []string{"metrics.>"},
		MaxAge:      opt.MetricsMaxAge,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		Replicas:    opt.Replicas,
		Compression: jetstream.S2Compression,
		// Samples and points are not control-plane state: they may be
		// flushed in batches, as log lines are.
		PersistMode: jetstream.AsyncPersistMode,
	}}
	for _, r := range skiff.Resolutions {
		out = append(out, jetstream.StreamConfig{
			Name:        r.Stream,
			Subjects:    []string{skiff.PointSubject(r.Name, "*")},
			MaxAge:      r.Keep,
			Duplicates:  pointDuplicates,
			Discard:     jetstream.DiscardOld,
			Storage:     jetstream.FileStorage,
			Replicas:    opt.Replicas,
			Compression: jetstream.S2Compression,
			PersistMode: jetstream.AsyncPersistMode,
		})
	}
	return out
}

// RecordRouterSample publishes a router's sample into the METRICS stream.
func (s *Store) RecordRouterSample(ctx context.Context, rs skiff.RouterSample) error {
	data, err := json.Marshal(rs)
	if err != nil {
		return err
	}
	if _, err := s.JS.Publish(ctx, skiff.MetricsSubject(rs.App, "router", rs.Node), data); err != nil {
		return fmt.Errorf("record metrics of %s: %w", rs.App, err)
	}
	return nil
}

// WritePoints writes points of resolution res, each with an ID of its app
// and time so that writing one again within pointDuplicates stores
// nothing.
func (s *Store) WritePoints(ctx context.Context, res skiff.Resolution, points []skiff.MetricsPoint) error {
	acks := make([]jetstream.PubAckFuture, 0, len(points))
	for _, p := range points {
		data, err := json.Marshal(p)
		if err != nil {
			return err
		}
		id := res.Name + "." + p.App + "." + strconv.FormatInt(p.Time.Unix(), 10)
		f, err := s.JS.PublishAsync(skiff.PointSubject(res.Name, p.App), data, jetstream.WithMsgID(id))
		if err != nil {
			return fmt.Errorf("write %s points: %w", res.Name, err)
		}
		acks = append(acks, f)
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("write %s points: %w", res.Name, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// LastPoint returns the point written last at resolution res, of any
// app; ok is false if there is none.
func (s *Store) LastPoint(ctx context.Context, res skiff.Resolution) (p skiff.MetricsPoint, ok bool, err error) {
	stream, err := s.JS.Stream(ctx, res.Stream)
	if err != nil {
		return p, false, fmt.Errorf("read last %s point: %w", res.Name, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return p, false, fmt.Errorf("read last %s point: %w", res.Name, err)
	}
	if info.State.Msgs == 0 {
		return p, false, nil
	}
	msg, err := stream.GetMsg(ctx, info.State.LastSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("read last %s point: %w", res.Name, err)
	}
	if err := json.Unmarshal(msg.Data, &p); err != nil {
		return p, false, fmt.Errorf("read last %s point: %w", res.Name, err)
	}
	return p, true, nil
}

// ScanPoints calls fn with every point of resolution res written from
// since on, of app ("*": every app), in the order written.
func (s *Store) ScanPoints(ctx context.Context, res skiff.Resolution, app string, since time.Time, fn func(skiff.MetricsPoint)) error {
	err := s.Scan(ctx, res.Stream, []string{skiff.PointSubject(res.Name, app)}, since, func(_ string, data []byte, _ time.Time) bool {
		var p skiff.MetricsPoint
		if json.Unmarshal(data, &p) == nil {
			fn(p)
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("read %s points: %w", res.Name, err)
	}
	return nil
}

// MetricsQuery asks for an app's points over a span of time.
type MetricsQuery struct {
	Since time.Time
	Until time.Time // zero: now
	// Step names a resolution ("10s", "1m", "1h"); "" or "auto" picks
	// one for the span (skiff.ResolutionFor).
	Step string
}

// Metrics reads app's points of the steps that overlap [q.Since,
// q.Until), one per step, oldest first, with their derived fields set.
// Steps without any sample have no point. The API's metrics endpoint
// and alert rules both read through it.
func (s *Store) Metrics(ctx context.Context, app string, q MetricsQuery) (skiff.MetricsSeries, error) {
	if q.Until.IsZero() {
		q.Until = time.Now()
	}
	if !q.Since.Before(q.Until) {
		return skiff.MetricsSeries{}, skiff.Errorf(skiff.KindInvalid, "give a start before the end, e.g. --since 1h",
			"the span from %s to %s is empty", q.Since.Format(time.RFC3339), q.Until.Format(time.RFC3339))
	}
	res := skiff.ResolutionFor(q.Until.Sub(q.Since))
	if q.Step != "" && q.Step != "auto" {
		var ok bool
		if res, ok = skiff.ResolutionNamed(q.Step); !ok {
			return skiff.MetricsSeries{}, skiff.Errorf(skiff.KindInvalid, "give a step of auto, 10s, 1m or 1h",
				"unknown step %q", q.Step)
		}
	}
	out := skiff.MetricsSeries{App: app, Resolution: res.Name, Step: res.Step.Seconds(),
		Since: q.Since.UTC(), Until: q.Until.UTC(), Points: []skiff.MetricsPoint{}}
	from := q.Since.Truncate(res.Step)
	byTime := map[time.Time]skiff.MetricsPoint{}
	// A point is written after its step ends: those from `from` on were
	// all written after it.
	err := s.ScanPoints(ctx, res, app, from, func(p skiff.MetricsPoint) {
		if !p.Time.Before(from) && p.Time.Before(q.Until) {
			byTime[p.Time] = p
		}
	})
	if err != nil {
		return out, err
	}
	for _, p := range byTime {
		p.Derive(res.Step)
		out.Points = append(out.Points, p)
	}
	sort.Slice(out.Points, func(i, j int) bool { return out.Points[i].Time.Before(out.Points[j].Time) })
	return out, nil
}
