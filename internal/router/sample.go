package router

import (
	"context"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Every SampleInterval, at wall-clock multiples of it, the router reads
// the counters of each app entry (metrics.go) and publishes
// what they grew by since the last reading as a skiff.RouterSample: the
// requests' path adds to those counters only, as before, and the
// sampler's reading costs them nothing.

// counts is one reading of an app's counters, since they were made.
type counts struct {
	requests skiff.StatusCounts
	bytes    int64
	latency  skiff.Histogram
}

// since is what c grew by since prev; a count that shrank (it cannot,
// short of a new entry) counts from zero.
func (c counts) since(prev counts) counts {
	d := c
	sub := func(now, before int64) int64 {
		if now < before {
			return now
		}
		return now - before
	}
	for i := range d.requests {
		d.requests[i] = sub(c.requests[i], prev.requests[i])
	}
	d.bytes = sub(c.bytes, prev.bytes)
	for i := range d.latency.Counts {
		d.latency.Counts[i] = sub(c.latency.Counts[i], prev.latency.Counts[i])
	}
	d.latency.Sum = max(c.latency.Sum-prev.latency.Sum, 0)
	return d
}

// publishSamples publishes the apps' samples every interval until
// drained is closed (the router stopped, and the requests under way
// ended), and then once more, for the interval under way. Then it
// removes its apps' series from the registry. Without a Node it only
// does that.
func (r *Router) publishSamples(ctx context.Context, drained <-chan struct{}) {
	defer r.forgetAll()
	if r.cfg.Node == "" {
		<-drained
		return
	}
	iv := r.cfg.SampleInterval
	last := map[*appMetrics]counts{} // readings of the last sample, by entry
	timer := time.NewTimer(time.Until(time.Now().Truncate(iv).Add(iv)))
	defer timer.Stop()
	for {
		var end time.Time
		select {
		case <-drained:
			end = time.Now().Truncate(iv).Add(iv)
		case now := <-timer.C:
			// The end of the interval is the multiple of iv the timer
			// was set for, even if it fired late.
			end = now.Add(iv / 2).Truncate(iv)
			timer.Reset(time.Until(end.Add(iv)))
		}
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), iv)
		last = r.sample(pctx, end, last)
		cancel()
		select {
		case <-drained:
			return
		default:
		}
	}
}

// forgetAll removes the series of every app of the table.
func (r *Router) forgetAll() {
	r.table.Load().exact.each(func(e *appEntry) { e.metrics.forget(e.name) })
}

// sample publishes, for each app served since the last readings, a
// sample of the interval ending at end; it returns the new readings.
// Entries are new when an app appears, with counters at zero, so an app
// first seen counts from zero.
func (r *Router) sample(ctx context.Context, end time.Time, last map[*appMetrics]counts) map[*appMetrics]counts {
	now := make(map[*appMetrics]counts, len(last))
	r.table.Load().exact.each(func(e *appEntry) {
		if _, seen := now[e.metrics]; seen {
			return // an app of several hostnames
		}
		c := e.metrics.read()
		now[e.metrics] = c
		d := c.since(last[e.metrics])
		if d.requests.Total() == 0 && d.bytes == 0 {
			return
		}
		s := skiff.RouterSample{App: e.name, Node: r.cfg.Node, Time: end.UTC(), Interval: r.cfg.SampleInterval.Seconds(),
			Requests: d.requests, BytesOut: d.bytes, Latency: d.latency}
		if err := r.st.RecordRouterSample(ctx, s); err != nil {
			// What it counted goes in the next sample instead.
			r.log.Warn("publish a metrics sample", "app", e.name, "err", err)
			now[e.metrics] = last[e.metrics]
		}
	})
	return now
}
