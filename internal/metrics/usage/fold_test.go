package usage

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

var h10 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*max(1, math.Abs(a), math.Abs(b)) }

func TestFoldInstances(t *testing.T) {
	sample := func(app string, at time.Duration, size string, interval, cpu, mem float64) skiff.UsageSample {
		return skiff.UsageSample{App: app, ID: "i1", Time: h10.Add(at), Size: size, Interval: interval, CPUSeconds: cpu,
			MemoryByteSeconds: mem * interval}
	}
	tests := []struct {
		name     string
		from, to time.Time
		samples  []skiff.UsageSample
		want     []skiff.UsageHour
	}{{
		name: "a sample counts in the hour its interval ended in",
		from: h10, to: h10.Add(2 * time.Hour),
		samples: []skiff.UsageSample{
			sample("shop", 10*time.Second, "", 10, 1.5, gib),
			sample("shop", time.Hour-time.Second, "", 10, 0.25, gib),
			sample("shop", time.Hour+2*time.Second, "1x", 10, 2, 2*gib), // began in hour 10, ended in 11
		},
		want: []skiff.UsageHour{
			{App: "shop", Hour: h10, CPUSeconds: 1.75, MemoryGBHours: 20.0 / 3600, InstanceHours: map[string]float64{"1x": 20.0 / 3600}},
			{App: "shop", Hour: h10.Add(time.Hour), CPUSeconds: 2, MemoryGBHours: 20.0 / 3600, InstanceHours: map[string]float64{"1x": 10.0 / 3600}},
		},
	}, {
		name: "apps and sizes apart",
		from: h10, to: h10.Add(time.Hour),
		samples: []skiff.UsageSample{
			sample("shop", time.Minute, "2x", 3600, 7, 0),
			sample("blog", time.Minute, "", 1800, 1, 0),
			sample("shop", 2*time.Minute, "", 60, 0, 0),
		},
		want: []skiff.UsageHour{
			{App: "blog", Hour: h10, CPUSeconds: 1, InstanceHours: map[string]float64{"1x": 0.5}},
			{App: "shop", Hour: h10, CPUSeconds: 7, InstanceHours: map[string]float64{"2x": 1, "1x": 60.0 / 3600}},
		},
	}, {
		name: "samples outside the span are left out",
		from: h10, to: h10.Add(time.Hour),
		samples: []skiff.UsageSample{
			sample("shop", -time.Second, "", 10, 5, 0),
			sample("shop", time.Hour, "", 10, 5, 0),
			sample("shop", 30*time.Minute, "", 10, 1, 0),
		},
		want: []skiff.UsageHour{{App: "shop", Hour: h10, CPUSeconds: 1, InstanceHours: map[string]float64{"1x": 10.0 / 3600}}},
	}, {
		name: "nothing used, no record",
		from: h10, to: h10.Add(time.Hour),
		want: []skiff.UsageHour{},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFold(tt.from, tt.to)
			for _, s := range tt.samples {
				f.Instance(s)
			}
			sameRecords(t, f.Records(), tt.want)
		})
	}
}

func TestFoldAddons(t *testing.T) {
	measure := func(name string, at time.Duration, bytes int64) skiff.AddonUsageSample {
		return skiff.AddonUsageSample{App: "shop", Addon: name, Type: skiff.AddonPostgres, Plan: skiff.PlanShared,
			AddonUsage: skiff.AddonUsage{Time: h10.Add(at), Bytes: bytes}}
	}
	tests := []struct {
		name     string
		measures []skiff.AddonUsageSample
		want     map[string]skiff.AddonHours
	}{{
		name: "each measure counts the time since the one before, the first nothing",
		measures: []skiff.AddonUsageSample{
			measure("pg", 0, gib), measure("pg", time.Minute, gib), measure("pg", 3*time.Minute, 2*gib),
		},
		want: map[string]skiff.AddonHours{"pg": {Type: "postgres", Plan: "shared", Hours: 3.0 / 60, GBHours: 1.0/60 + 2*2.0/60}},
	}, {
		name: "the measure before the span counts for the first one in it",
		measures: []skiff.AddonUsageSample{
			measure("pg", -30*time.Second, gib), measure("pg", 30*time.Second, gib),
		},
		want: map[string]skiff.AddonHours{"pg": {Type: "postgres", Plan: "shared", Hours: 1.0 / 60, GBHours: 1.0 / 60}},
	}, {
		name: "a silence longer than MaxGap is not counted",
		measures: []skiff.AddonUsageSample{
			measure("pg", 0, 0), measure("pg", MaxGap+time.Second, 0), measure("pg", MaxGap+time.Minute+time.Second, 0),
		},
		want: map[string]skiff.AddonHours{"pg": {Type: "postgres", Plan: "shared", Hours: 1.0 / 60}},
	}, {
		name: "a measure out of order or seen twice counts nothing",
		measures: []skiff.AddonUsageSample{
			measure("pg", 0, 0), measure("pg", 2*time.Minute, 0), measure("pg", time.Minute, 0), measure("pg", 2*time.Minute, 0),
		},
		want: map[string]skiff.AddonHours{"pg": {Type: "postgres", Plan: "shared", Hours: 2.0 / 60}},
	}, {
		name: "add-ons apart",
		measures: []skiff.AddonUsageSample{
			measure("a", 0, 0), measure("b", 0, 0), measure("a", time.Minute, 0), measure("b", 2*time.Minute, 0),
		},
		want: map[string]skiff.AddonHours{
			"a": {Type: "postgres", Plan: "shared", Hours: 1.0 / 60},
			"b": {Type: "postgres", Plan: "shared", Hours: 2.0 / 60},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFold(h10, h10.Add(time.Hour))
			for _, m := range tt.measures {
				f.Addon(m)
			}
			recs := f.Records()
			if len(recs) != 1 {
				t.Fatalf("records %+v", recs)
			}
			got := recs[0].Addons
			if len(got) != len(tt.want) {
				t.Fatalf("add-ons %+v, want %+v", got, tt.want)
			}
			for name, w := range tt.want {
				g := got[name]
				if g.Type != w.Type || g.Plan != w.Plan || !near(g.Hours, w.Hours) || !near(g.GBHours, w.GBHours) {
					t.Errorf("%s: %+v, want %+v", name, g, w)
				}
			}
		})
	}
}

// TestFoldMessages: samples are told apart by their subjects, as they
// come from the streams; what is not a sample is skipped.
func TestFoldMessages(t *testing.T) {
	f := NewFold(h10, h10.Add(time.Hour))
	msg := func(subject string, v any) {
		data, _ := json.Marshal(v)
		f.Message(subject, data)
	}
	msg(skiff.UsageSubject("shop", "i1"), skiff.UsageSample{App: "shop", Time: h10.Add(time.Minute), Interval: 10, CPUSeconds: 1})
	msg(skiff.AddonUsageSubject("shop", "pg"), skiff.AddonUsageSample{App: "shop", Addon: "pg", Type: "postgres", Plan: "shared",
		AddonUsage: skiff.AddonUsage{Time: h10}})
	msg(skiff.AddonUsageSubject("shop", "pg"), skiff.AddonUsageSample{App: "shop", Addon: "pg", Type: "postgres", Plan: "shared",
		AddonUsage: skiff.AddonUsage{Time: h10.Add(time.Minute)}})
	msg(skiff.MetricsSubject("shop", "router", "n1"), skiff.RouterSample{App: "shop", Time: h10.Add(time.Minute), BytesOut: 1000,
		Requests: skiff.StatusCounts{0, 7, 1, 1, 1}})
	msg(skiff.MetricsSubject("shop", "router", "n2"), skiff.RouterSample{App: "shop", Time: h10.Add(2 * time.Minute), BytesOut: 24})
	msg("usage.shop", skiff.UsageSample{App: "shop", Time: h10, CPUSeconds: 100})                 // no instance
	msg("metrics.shop.agent.n1", skiff.RouterSample{App: "shop", Time: h10, BytesOut: 100})       // not a router's
	f.Message(skiff.UsageSubject("shop", "i2"), []byte("{not json"))                              // skipped
	msg(skiff.UsageSubject("shop", "i3"), skiff.UsageSample{App: "", Time: h10, CPUSeconds: 100}) // no app
	recs := f.Records()
	if len(recs) != 1 {
		t.Fatalf("records %+v", recs)
	}
	r := recs[0]
	if r.CPUSeconds != 1 || r.BandwidthBytes != 1024 || r.Requests != 10 || !near(r.Addons["pg"].Hours, 1.0/60) {
		t.Errorf("record %+v", r)
	}
}

// TestFoldKeepsEverySecond: however samples fall across hours, the
// records of a span add up to exactly the samples in it: what the cgroups
// measured is billed once, and only once.
func TestFoldKeepsEverySecond(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		from := h10.Add(-time.Duration(rng.IntN(48)) * time.Hour)
		to := from.Add(time.Duration(1+rng.IntN(72)) * time.Hour)
		f := NewFold(from, to)
		var cpu, hours float64
		for range rng.IntN(500) {
			s := skiff.UsageSample{App: []string{"a", "b", "c"}[rng.IntN(3)], Interval: rng.Float64() * 10,
				CPUSeconds: rng.Float64() * 10, Time: from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)+2*time.Hour))) - time.Hour)}
			if !s.Time.Before(from) && s.Time.Before(to) {
				cpu += s.CPUSeconds
				hours += s.Interval / 3600
			}
			f.Instance(s)
		}
		var gotCPU, gotHours float64
		for _, u := range Sum(f.Records()) {
			gotCPU += u.CPUSeconds
			gotHours += u.InstanceHours["1x"]
		}
		if !near(gotCPU, cpu) || !near(gotHours, hours) {
			t.Fatalf("round %d: cpu %v hours %v, want %v %v", round, gotCPU, gotHours, cpu, hours)
		}
	}
}

func TestSum(t *testing.T) {
	recs := []skiff.UsageHour{
		{App: "shop", Hour: h10.Add(time.Hour), CPUSeconds: 1, InstanceHours: map[string]float64{"1x": 1}, BandwidthBytes: 5,
			Addons: map[string]skiff.AddonHours{"pg": {Type: "postgres", Plan: "shared", Hours: 1, GBHours: 2}}},
		{App: "shop", Hour: h10, CPUSeconds: 2, MemoryGBHours: 3, InstanceHours: map[string]float64{"1x": 1, "2x": 1}, Requests: 4,
			Addons: map[string]skiff.AddonHours{"pg": {Type: "postgres", Plan: "shared", Hours: 1, GBHours: 2}}},
		{App: "blog", Hour: h10, CPUSeconds: 9},
	}
	got := Sum(recs)
	shop := got["shop"]
	if len(got) != 2 || shop.Hour != h10 || shop.CPUSeconds != 3 || shop.MemoryGBHours != 3 || shop.BandwidthBytes != 5 ||
		shop.Requests != 4 || shop.InstanceHours["1x"] != 2 || shop.InstanceHours["2x"] != 1 ||
		shop.Addons["pg"] != (skiff.AddonHours{Type: "postgres", Plan: "shared", Hours: 2, GBHours: 4}) || got["blog"].CPUSeconds != 9 {
		t.Errorf("sum %+v", got)
	}
	// The records summed are left as they were.
	if recs[0].InstanceHours["1x"] != 1 || recs[0].Addons["pg"].Hours != 1 {
		t.Errorf("records changed: %+v", recs)
	}
}

func sameRecords(t *testing.T, got, want []skiff.UsageHour) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("records %+v, want %+v", got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		ok := g.App == w.App && g.Hour.Equal(w.Hour) && near(g.CPUSeconds, w.CPUSeconds) && near(g.MemoryGBHours, w.MemoryGBHours) &&
			len(g.InstanceHours) == len(w.InstanceHours) && g.BandwidthBytes == w.BandwidthBytes
		for size, h := range w.InstanceHours {
			ok = ok && near(g.InstanceHours[size], h)
		}
		if !ok {
			t.Errorf("record %d: %+v, want %+v", i, g, w)
		}
	}
}
