package metrics

import (
	"sort"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// folder folds samples into points at every resolution. It does no I/O
// and reads no clock: the leader feeds it samples and a watermark, and
// writes the points it closes. Only the leader's loop uses it.
type folder struct {
	res []skiff.Resolution
	// steps are the open steps of the finest resolution, by start (Unix
	// seconds), each per app.
	steps map[int64]map[string]*stepApp
	// open[r], r ≥ 1, are the open steps of resolution r: the points of
	// resolution r-1 merged so far, by start and app.
	open []map[int64]map[string]*skiff.MetricsPoint
	// done[r]: every step of resolution r that starts before it is
	// closed. done[r+1] ≤ done[r], each a multiple of its step.
	done []time.Time
	// late counts samples, or parts of usage samples, that came after
	// their step closed, and were dropped.
	late int
}

// stepApp is what an app's samples of one finest step add up to so far.
type stepApp struct {
	point skiff.MetricsPoint     // requests, bytes and latency from routers
	inst  map[string]*instanceIn // usage by instance ID
}

// instanceIn is one instance's usage within one step.
type instanceIn struct {
	cpu     float64 // CPU seconds of the samples' parts in the step
	memory  int64   // the largest memory measured
	seconds float64 // how much of the step its samples cover
}

// newFolder returns a folder whose steps before done[r] are closed at
// each resolution r; done[r] is aligned to its step and to done[r-1].
func newFolder(res []skiff.Resolution, done []time.Time) *folder {
	f := &folder{res: res, steps: map[int64]map[string]*stepApp{}, done: make([]time.Time, len(res)),
		open: make([]map[int64]map[string]*skiff.MetricsPoint, len(res))}
	for r := range res {
		d := done[r].UTC().Truncate(res[r].Step)
		if r > 0 {
			d = minTime(d, f.done[r-1].Truncate(res[r].Step))
			f.open[r] = map[int64]map[string]*skiff.MetricsPoint{}
		}
		f.done[r] = d
	}
	return f
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// app returns the app's accumulator of the finest step starting at t,
// made if missing, or nil if that step is closed.
func (f *folder) app(t time.Time, app string) *stepApp {
	if t.Before(f.done[0]) {
		return nil
	}
	apps := f.steps[t.Unix()]
	if apps == nil {
		apps = map[string]*stepApp{}
		f.steps[t.Unix()] = apps
	}
	a := apps[app]
	if a == nil {
		a = &stepApp{point: skiff.MetricsPoint{App: app, Time: t}, inst: map[string]*instanceIn{}}
		apps[app] = a
	}
	return a
}

// addRouter adds a router's sample to the step its interval falls in:
// the one its middle lies in, since routers sample at the steps' bounds.
func (f *folder) addRouter(s skiff.RouterSample) {
	mid := s.Time.UTC().Add(-time.Duration(s.Interval * float64(time.Second) / 2))
	a := f.app(mid.Truncate(f.res[0].Step), s.App)
	if a == nil {
		f.late++
		return
	}
	a.point.Requests.Add(s.Requests)
	a.point.BytesOut += s.BytesOut
	a.point.Latency.Add(s.Latency)
}

// addUsage spreads an agent's usage sample over the steps its interval
// overlaps: each gets the share of CPU time of its overlap, and the
// memory measured at the sample's end as a level seen during it.
func (f *folder) addUsage(u skiff.UsageSample) {
	step := f.res[0].Step
	end := u.Time.UTC()
	iv := time.Duration(u.Interval * float64(time.Second))
	if iv <= 0 {
		iv = 0
	}
	begin := end.Add(-iv)
	dropped := false
	for t := begin.Truncate(step); t.Before(end) || t.Equal(begin); t = t.Add(step) {
		over := minTime(end, t.Add(step)).Sub(maxTime(begin, t))
		if over <= 0 && iv > 0 {
			continue
		}
		a := f.app(t, u.App)
		if a == nil {
			dropped = true
			continue
		}
		in := a.inst[u.ID]
		if in == nil {
			in = &instanceIn{}
			a.inst[u.ID] = in
		}
		if iv > 0 {
			in.cpu += u.CPUSeconds * over.Seconds() / iv.Seconds()
		} else {
			in.cpu += u.CPUSeconds
		}
		in.memory = max(in.memory, u.Memory)
		in.seconds = min(in.seconds+over.Seconds(), step.Seconds())
	}
	if dropped {
		f.late++
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// addPoint merges a point of resolution r-1 into its open step of
// resolution r; the leader restores its open steps with it.
func (f *folder) addPoint(r int, p skiff.MetricsPoint) {
	t := p.Time.UTC().Truncate(f.res[r].Step)
	if t.Before(f.done[r]) {
		return
	}
	apps := f.open[r][t.Unix()]
	if apps == nil {
		apps = map[string]*skiff.MetricsPoint{}
		f.open[r][t.Unix()] = apps
	}
	if q := apps[p.App]; q != nil {
		q.Add(p)
		return
	}
	q := p
	q.Time = t
	apps[p.App] = &q
}

// advance closes every finest step that ends by until, and every
// coarser step that its finer steps then cover, and returns the points
// closed at each resolution, in time order and by app within a step.
func (f *folder) advance(until time.Time) [][]skiff.MetricsPoint {
	out := make([][]skiff.MetricsPoint, len(f.res))
	step := f.res[0].Step
	for !f.done[0].Add(step).After(until) {
		t := f.done[0]
		points := finish(stepPoints(t, step, f.steps[t.Unix()]), step)
		delete(f.steps, t.Unix())
		f.done[0] = t.Add(step)
		out[0] = append(out[0], points...)
		for r := 1; r < len(f.res); r++ {
			for _, p := range points {
				f.addPoint(r, p)
			}
			points = nil
			rs := f.res[r].Step
			for !f.done[r].Add(rs).After(f.done[r-1]) {
				t := f.done[r]
				closed := make([]skiff.MetricsPoint, 0, len(f.open[r][t.Unix()]))
				for _, p := range f.open[r][t.Unix()] {
					closed = append(closed, *p)
				}
				delete(f.open[r], t.Unix())
				f.done[r] = t.Add(rs)
				closed = finish(closed, rs)
				out[r] = append(out[r], closed...)
				points = append(points, closed...)
			}
		}
	}
	return out
}

// stepPoints makes the points of one finest step from its apps'
// accumulators: an app's CPU time is its instances' sum, its memory the
// sum of each instance's largest measure, its instances their number;
// the gauges count as seen for as long as its best-covered instance was.
func stepPoints(t time.Time, step time.Duration, apps map[string]*stepApp) []skiff.MetricsPoint {
	out := make([]skiff.MetricsPoint, 0, len(apps))
	for _, a := range apps {
		p := a.point
		var memory int64
		var seen float64
		for _, in := range a.inst {
			p.CPUSeconds += in.cpu
			memory += in.memory
			seen = max(seen, in.seconds)
		}
		if len(a.inst) > 0 {
			if seen == 0 {
				seen = step.Seconds() // samples of no duration still say what ran
			}
			p.Memory = skiff.Gauge{Avg: float64(memory), Max: float64(memory), Seconds: seen}
			p.Instances = skiff.Gauge{Avg: float64(len(a.inst)), Max: float64(len(a.inst)), Seconds: seen}
		}
		out = append(out, p)
	}
	return out
}

// finish derives the points' fields for their step and orders them by
// app.
func finish(points []skiff.MetricsPoint, step time.Duration) []skiff.MetricsPoint {
	for i := range points {
		points[i].Derive(step)
	}
	sort.Slice(points, func(i, j int) bool { return points[i].App < points[j].App })
	return points
}
