package usage

import (
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// gib is a GB of memory, data and bandwidth: 2^30 bytes.
const gib = 1 << 30

// Fold sums samples into one record of usage per app and hour, for the
// hours in [from, to). A sample counts in the hour its interval ended in:
// summing the hours of an instance gives everything its cgroup measured.
//
// Feed it the samples in the order of their streams. An add-on's measure
// counts for the time since its previous one, up to MaxGap: a fold that
// is to count an add-on's first measures of the span is fed the measures
// of MaxGap before it too.
type Fold struct {
	from, to time.Time
	hours    map[appHour]*skiff.UsageHour
	measured map[string]time.Time // add-on key -> time of its last measure seen
}

type appHour struct {
	app  string
	hour time.Time
}

// MaxGap is the longest time an add-on's measure counts for. The addons
// role measures every add-on about once a minute while it is ready; a
// longer silence (the add-on was not ready, or no addons leader ran) is
// not counted.
const MaxGap = 10 * time.Minute

// NewFold starts a fold of the hours in [from, to) (whole hours, UTC).
func NewFold(from, to time.Time) *Fold {
	return &Fold{from: from.UTC().Truncate(time.Hour), to: to.UTC(), hours: map[appHour]*skiff.UsageHour{},
		measured: map[string]time.Time{}}
}

// record is app's record of the hour t falls in, or nil outside the span.
func (f *Fold) record(app string, t time.Time) *skiff.UsageHour {
	hour := t.UTC().Truncate(time.Hour)
	if hour.Before(f.from) || !hour.Before(f.to) || app == "" {
		return nil
	}
	k := appHour{app, hour}
	r := f.hours[k]
	if r == nil {
		r = &skiff.UsageHour{App: app, Hour: hour}
		f.hours[k] = r
	}
	return r
}

// Instance adds an instance's sample.
func (f *Fold) Instance(s skiff.UsageSample) {
	r := f.record(s.App, s.Time)
	if r == nil {
		return
	}
	size := s.Size
	if size == "" {
		size = skiff.DefaultSize
	}
	r.CPUSeconds += s.CPUSeconds
	r.MemoryGBHours += s.MemoryByteSeconds / gib / 3600
	if r.InstanceHours == nil {
		r.InstanceHours = map[string]float64{}
	}
	r.InstanceHours[size] += s.Interval / 3600
}

// Addon adds an add-on's measure: the time since its previous measure,
// and the data it held over that time.
func (f *Fold) Addon(s skiff.AddonUsageSample) {
	key := skiff.AddonKey(s.App, s.Addon)
	prev, t := f.measured[key], s.Time.UTC()
	if !t.After(prev) {
		return // out of order, or seen: counts nothing
	}
	f.measured[key] = t
	gap := t.Sub(prev)
	if prev.IsZero() || gap > MaxGap {
		return
	}
	r := f.record(s.App, t)
	if r == nil {
		return
	}
	if r.Addons == nil {
		r.Addons = map[string]skiff.AddonHours{}
	}
	a := r.Addons[s.Addon]
	a.Type, a.Plan = s.Type, s.Plan
	a.Hours += gap.Hours()
	a.GBHours += float64(s.Bytes) / gib * gap.Hours()
	r.Addons[s.Addon] = a
}

// Router adds a router's sample: the bytes sent to clients.
func (f *Fold) Router(s skiff.RouterSample) {
	if r := f.record(s.App, s.Time); r != nil {
		r.BandwidthBytes += s.BytesOut
		r.Requests += s.Requests.Total()
	}
}

// Message adds a message of the USAGE or METRICS stream, by its subject;
// others, and messages that do not decode, are skipped.
func (f *Fold) Message(subject string, data []byte) {
	parts := strings.Split(subject, ".")
	switch {
	case len(parts) == 3 && parts[0] == "usage":
		var s skiff.UsageSample
		if json.Unmarshal(data, &s) == nil {
			f.Instance(s)
		}
	case len(parts) == 4 && parts[0] == "usage" && parts[2] == "addon":
		var s skiff.AddonUsageSample
		if json.Unmarshal(data, &s) == nil {
			f.Addon(s)
		}
	case len(parts) == 4 && parts[0] == "metrics" && parts[2] == "router":
		var s skiff.RouterSample
		if json.Unmarshal(data, &s) == nil {
			f.Router(s)
		}
	}
}

// Records are the fold's records, by app and then hour.
func (f *Fold) Records() []skiff.UsageHour {
	out := make([]skiff.UsageHour, 0, len(f.hours))
	for _, r := range f.hours {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].App != out[j].App {
			return out[i].App < out[j].App
		}
		return out[i].Hour.Before(out[j].Hour)
	})
	return out
}

// Sum adds up records per app: each app's usage over their span.
func Sum(records []skiff.UsageHour) map[string]skiff.UsageHour {
	out := map[string]skiff.UsageHour{}
	for _, r := range records {
		s, ok := out[r.App]
		if !ok || r.Hour.Before(s.Hour) {
			s.App, s.Hour = r.App, r.Hour
		}
		s.Add(r)
		out[r.App] = s
	}
	return out
}
