package usage

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func TestPrice(t *testing.T) {
	use := skiff.UsageHour{App: "shop", CPUSeconds: 7200, MemoryGBHours: 10, BandwidthBytes: 3 * gib,
		InstanceHours: map[string]float64{"1x": 100, "4x": 2, "2x": 1},
		Addons: map[string]skiff.AddonHours{
			"redis-1":    {Type: "redis", Plan: "dedicated", Hours: 10, GBHours: 73},
			"postgres-1": {Type: "postgres", Plan: "shared", Hours: 720, GBHours: 1460},
		}}
	type line struct {
		item      string
		qty, unit float64
	}
	tests := []struct {
		name   string
		prices skiff.Prices
		want   []line
		total  float64
	}{{
		name: "free",
		want: []line{{"cpu", 2, 0}, {"memory", 10, 0}, {"instances:1x", 100, 0}, {"instances:2x", 1, 0}, {"instances:4x", 2, 0},
			{"bandwidth", 3, 0}, {"addon:postgres-1", 720, 0}, {"data:postgres-1", 2, 0}, {"addon:redis-1", 10, 0}, {"data:redis-1", 0.1, 0}},
	}, {
		name: "every price",
		prices: skiff.Prices{CPUHour: 0.5, MemoryGBHour: 0.01, InstanceHour: map[string]float64{"1x": 0.01, "2x": 0.03},
			BandwidthGB: 0.09, AddonHour: map[string]float64{"postgres": 0.001, "postgres:dedicated": 1, "redis:dedicated": 0.02},
			DatabaseGBMonth: 0.25},
		want: []line{{"cpu", 2, 0.5}, {"memory", 10, 0.01}, {"instances:1x", 100, 0.01}, {"instances:2x", 1, 0.03},
			{"instances:4x", 2, 0.04}, // not listed: 1x's times 4
			{"bandwidth", 3, 0.09}, {"addon:postgres-1", 720, 0.001}, {"data:postgres-1", 2, 0.25},
			{"addon:redis-1", 10, 0.02}, {"data:redis-1", 0.1, 0.25}},
		total: 1 + 0.1 + 1 + 0.03 + 0.08 + 0.27 + 0.72 + 0.5 + 0.2 + 0.025,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Price(use, tt.prices)
			if got.App != "shop" || len(got.Items) != len(tt.want) {
				t.Fatalf("items %+v", got.Items)
			}
			for i, w := range tt.want {
				it := got.Items[i]
				if it.Item != w.item || !near(it.Quantity, w.qty) || it.UnitPrice != w.unit || !near(it.Cost, w.qty*w.unit) ||
					it.Unit == "" || it.Description == "" {
					t.Errorf("item %d: %+v, want %+v", i, it, w)
				}
			}
			if !near(got.Total, tt.total) {
				t.Errorf("total %v, want %v", got.Total, tt.total)
			}
		})
	}
}

func TestBill(t *testing.T) {
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	p := skiff.Prices{Currency: "EUR", CPUHour: 3.6}
	rep := Bill("2026-11", from, from.Add(time.Hour), map[string]skiff.UsageHour{
		"shop": {CPUSeconds: 10}, "blog": {CPUSeconds: 1}, "idle": {},
	}, p)
	if rep.Currency != "EUR" || len(rep.Apps) != 3 || rep.Apps[0].App != "blog" || rep.Apps[1].App != "idle" ||
		!near(rep.Total, 0.011) || !near(rep.Apps[2].Total, 0.01) || rep.Apps[2].Usage.App != "shop" || !rep.Apps[2].Usage.Hour.Equal(from) {
		t.Errorf("report %+v", rep)
	}
	if empty := Bill("2026-11", from, from, nil, p); empty.Apps == nil || empty.Total != 0 {
		t.Errorf("empty report %+v", empty) // [] in JSON, not null
	}
}

func TestParsePrices(t *testing.T) {
	tests := []struct {
		name, file string
		want       skiff.Prices
		err        string
	}{{
		name: "JSON",
		file: `{"currency": "EUR", "cpu_hour": 0.02, "instance_hour": {"1x": 0.01}, "addon_hour": {"postgres:shared": 0.005}}`,
		want: skiff.Prices{Currency: "EUR", CPUHour: 0.02, InstanceHour: map[string]float64{"1x": 0.01},
			AddonHour: map[string]float64{"postgres:shared": 0.005}},
	}, {
		name: "YAML",
		file: "memory_gb_hour: 0.005\nbandwidth_gb: 0.09\ndatabase_gb_month: 0.25\naddon_hour:\n  redis: 0.02\n",
		want: skiff.Prices{Currency: "USD", MemoryGBHour: 0.005, BandwidthGB: 0.09, DatabaseGBMonth: 0.25,
			AddonHour: map[string]float64{"redis": 0.02}},
	}, {
		name: "empty: free, in the default currency",
		want: skiff.Prices{Currency: "USD"},
	}, {
		name: "a misspelt price is refused, not free",
		file: `cpu_hours: 1`,
		err:  `unknown field "cpu_hours" (the fields are currency, cpu_hour`,
	}, {
		name: "negative",
		file: `cpu_hour: -1`,
		err:  "invalid price -1 for cpu_hour",
	}, {
		name: "unknown size",
		file: `instance_hour: {"3x": 1}`,
		err:  `invalid process size "3x"`,
	}, {
		name: "unknown plan",
		file: `addon_hour: {"redis:shared": 1}`,
		err:  `unknown add-on type or plan "redis:shared"`,
	}, {
		name: "not a number",
		file: `cpu_hour: cheap`,
		err:  "cannot unmarshal",
	}, {
		name: "not YAML",
		file: "cpu_hour: [",
		err:  "not JSON or YAML",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePrices([]byte(tt.file))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Currency != tt.want.Currency || got.CPUHour != tt.want.CPUHour || got.MemoryGBHour != tt.want.MemoryGBHour ||
				got.BandwidthGB != tt.want.BandwidthGB || got.DatabaseGBMonth != tt.want.DatabaseGBMonth ||
				!maps.Equal(got.InstanceHour, tt.want.InstanceHour) || !maps.Equal(got.AddonHour, tt.want.AddonHour) {
				t.Errorf("prices %+v, want %+v", got, tt.want)
			}
		})
	}
}
