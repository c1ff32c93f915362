package skiff

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Usage metering and bills (docs/usage.md).
//
// Agents publish UsageSample on UsageSubject for every instance, the addons
// role AddonUsageSample on AddonUsageSubject for every add-on, and routers
// their per-app samples on the METRICS stream. The metrics role's leader
// folds them, once an hour is over, into one UsageHour per app in the
// usage_hours bucket; a UsageReport sums those hours (and the samples of
// the hours not folded yet) over a month and prices them.

// AddonUsageSample is one measure of an add-on, published by the addons
// role on AddonUsageSubject about once a minute while the add-on is ready.
// The time since the add-on's previous measure is the time it counts for.
type AddonUsageSample struct {
	App   string `json:"app"`
	Addon string `json:"addon"`
	Type  string `json:"type"`
	Plan  string `json:"plan"`
	AddonUsage
}

// AddonUsageSubject is the subject the measures of app's add-on are
// published on, in the USAGE stream beside the instances' samples.
func AddonUsageSubject(app, addon string) string { return "usage." + app + ".addon." + addon }

// UsageHour is what one app used in one hour, in the usage_hours bucket
// under UsageHourKey; summed over the hours of a month it is what the app
// used in the month. Memory and data are in GB of 2^30 bytes.
type UsageHour struct {
	App string `json:"app"`
	// Hour is the hour's start (UTC); in a sum, the start of its span.
	Hour time.Time `json:"hour"`
	// CPUSeconds is the CPU time the app's processes used, as their
	// cgroups measured it.
	CPUSeconds float64 `json:"cpu_seconds"`
	// MemoryGBHours is the memory its processes held, times how long.
	MemoryGBHours float64 `json:"memory_gb_hours"`
	// InstanceHours is how long its processes ran, by process size (1x…).
	InstanceHours map[string]float64 `json:"instance_hours,omitempty"`
	// BandwidthBytes is what its routers sent to clients, heads included;
	// Requests how many requests they answered.
	BandwidthBytes int64 `json:"bandwidth_bytes"`
	Requests       int64 `json:"requests"`
	// Addons is each add-on's usage, by the add-on's name.
	Addons map[string]AddonHours `json:"addons,omitempty"`
}

// Empty reports whether u counts no usage at all.
func (u UsageHour) Empty() bool {
	return u.CPUSeconds == 0 && u.MemoryGBHours == 0 && len(u.InstanceHours) == 0 && u.BandwidthBytes == 0 &&
		u.Requests == 0 && len(u.Addons) == 0
}

// AddonHours is what an add-on counted for over an hour or a month.
type AddonHours struct {
	Type  string  `json:"type"`
	Plan  string  `json:"plan"`
	Hours float64 `json:"hours"`
	// GBHours is the data the add-on held (a database's size, a Redis
	// server's memory), times how long.
	GBHours float64 `json:"gb_hours"`
}

// Add adds o's usage into u.
func (u *UsageHour) Add(o UsageHour) {
	u.CPUSeconds += o.CPUSeconds
	u.MemoryGBHours += o.MemoryGBHours
	u.BandwidthBytes += o.BandwidthBytes
	u.Requests += o.Requests
	for size, h := range o.InstanceHours {
		if u.InstanceHours == nil {
			u.InstanceHours = map[string]float64{}
		}
		u.InstanceHours[size] += h
	}
	for name, a := range o.Addons {
		if u.Addons == nil {
			u.Addons = map[string]AddonHours{}
		}
		have := u.Addons[name]
		have.Type, have.Plan = a.Type, a.Plan
		have.Hours += a.Hours
		have.GBHours += a.GBHours
		u.Addons[name] = have
	}
}

// UsageHourKey is the key of app's usage in the hour starting at hour in
// the usage_hours bucket: "shop.2026-11.24T13", so that the hours of a
// month are the keys matching "shop.2026-11.*".
func UsageHourKey(app string, hour time.Time) string {
	return app + "." + hour.UTC().Format("2006-01.02T15")
}

// UsageFoldedKey is the key in the usage_hours bucket of a record with
// no app whose Hour is the first hour not folded yet: every hour before
// it has its records.
const UsageFoldedKey = "folded"

// Prices are what usage costs, from the metrics role's configuration
// (skiff server --prices and --price-*). A zero price is free.
type Prices struct {
	Currency string `json:"currency"`
	// CPUHour is the price of an hour of CPU time (3600 CPU seconds).
	CPUHour float64 `json:"cpu_hour,omitempty"`
	// MemoryGBHour is the price of a GB of memory held for an hour.
	MemoryGBHour float64 `json:"memory_gb_hour,omitempty"`
	// InstanceHour is the price of an hour of a running process, by
	// process size ("1x"); a size not listed costs what 1x costs times
	// its factor.
	InstanceHour map[string]float64 `json:"instance_hour,omitempty"`
	// BandwidthGB is the price of a GB sent by the routers to clients.
	BandwidthGB float64 `json:"bandwidth_gb,omitempty"`
	// AddonHour is the price of an hour of an add-on, by "type:plan"
	// ("postgres:dedicated") or by type for every plan ("redis").
	AddonHour map[string]float64 `json:"addon_hour,omitempty"`
	// DatabaseGBMonth is the price of a GB of add-on data kept for a
	// month (GBMonthHours hours).
	DatabaseGBMonth float64 `json:"database_gb_month,omitempty"`
}

// GBMonthHours is how many GB-hours make a GB-month: the hours of an
// average month (365 × 24 / 12).
const GBMonthHours = 730

// DefaultCurrency is the currency of prices that name none.
const DefaultCurrency = "USD"

// InstancePrice is the price of an hour of a process of size.
func (p Prices) InstancePrice(size string) float64 {
	if v, ok := p.InstanceHour[size]; ok {
		return v
	}
	return p.InstanceHour[DefaultSize] * float64(SizeFactor(size))
}

// AddonPrice is the price of an hour of an add-on of typ and plan.
func (p Prices) AddonPrice(typ, plan string) float64 {
	if v, ok := p.AddonHour[typ+":"+plan]; ok {
		return v
	}
	return p.AddonHour[typ]
}

// Validate reports why p cannot price usage, or nil.
func (p Prices) Validate() error {
	bad := func(what string, v float64) error {
		if v < 0 || v != v || v > 1e12 {
			return Errorf(KindInvalid, "prices are numbers from 0 (free) up, e.g. 0.05", "invalid price %v for %s", v, what)
		}
		return nil
	}
	for what, v := range map[string]float64{"cpu_hour": p.CPUHour, "memory_gb_hour": p.MemoryGBHour,
		"bandwidth_gb": p.BandwidthGB, "database_gb_month": p.DatabaseGBMonth} {
		if err := bad(what, v); err != nil {
			return err
		}
	}
	for size, v := range p.InstanceHour {
		if err := ValidateSize(size); err != nil {
			return Errorf(KindInvalid, "instance prices are by process size: 1x, 2x, 4x, 8x", "instance_hour: invalid process size %q", size)
		}
		if err := bad("instance_hour "+size, v); err != nil {
			return err
		}
	}
	for key, v := range p.AddonHour {
		typ, plan, _ := strings.Cut(key, ":")
		plans, ok := AddonPlans[typ]
		if !ok || plan != "" && !slices.Contains(plans, plan) {
			return Errorf(KindInvalid, "add-on prices are by TYPE or TYPE:PLAN: postgres, postgres:shared, postgres:dedicated, redis, redis:dedicated",
				"addon_hour: unknown add-on type or plan %q", key)
		}
		if err := bad("addon_hour "+key, v); err != nil {
			return err
		}
	}
	if len(p.Currency) > 16 || strings.ContainsAny(p.Currency, " \t\n,\"") {
		return Errorf(KindInvalid, "name the currency by its code, e.g. USD or EUR", "invalid currency %q", p.Currency)
	}
	return nil
}

// UsageRequest asks a node of the metrics role for a month's usage report
// (SubjectUsage). Apps lists the apps to report on; All reports on every
// app that used anything in the month, Apps ignored.
type UsageRequest struct {
	Month string   `json:"month"` // 2026-11
	Apps  []string `json:"apps,omitempty"`
	All   bool     `json:"all,omitempty"`
}

// UsageAnswer is the metrics role's answer to a UsageRequest: the report,
// or why there is none.
type UsageAnswer struct {
	Report *UsageReport `json:"report,omitempty"`
	Error  *APIError    `json:"error,omitempty"`
}

// UsageReport is GET /v1/usage: each app's usage over a month (up to now
// for the current month), priced.
type UsageReport struct {
	Month    string     `json:"month"`
	From     time.Time  `json:"from"`
	To       time.Time  `json:"to"`
	Currency string     `json:"currency"`
	Apps     []AppUsage `json:"apps"`
	// Total is the sum of the apps' totals.
	Total  float64 `json:"total"`
	Prices Prices  `json:"prices"`
}

// AppUsage is one app's usage over a report's span, and what it costs.
type AppUsage struct {
	App   string      `json:"app"`
	Usage UsageHour   `json:"usage"`
	Items []UsageItem `json:"items"`
	Total float64     `json:"total"`
}

// UsageItem is one line of a bill: a quantity of something used, its unit
// price and its cost (quantity × unit price, not rounded).
type UsageItem struct {
	// Item names the line: "cpu", "memory", "instances:1x", "bandwidth",
	// "addon:postgres-1", "data:postgres-1".
	Item        string  `json:"item"`
	Description string  `json:"description"`
	Quantity    float64 `json:"quantity"`
	Unit        string  `json:"unit"` // CPU-hour, GB-hour, hour, GB, GB-month
	UnitPrice   float64 `json:"unit_price"`
	Cost        float64 `json:"cost"`
}

// ParseMonth reads a month as YYYY-MM and returns its first instant (UTC).
func ParseMonth(s string) (time.Time, error) {
	t, err := time.Parse("2006-01", strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, Errorf(KindInvalid, "give the month as YYYY-MM, e.g. "+time.Now().UTC().Format("2006-01"),
			"invalid month %q", s)
	}
	return t.UTC(), nil
}

// MonthOf formats the month of t as YYYY-MM.
func MonthOf(t time.Time) string { return t.UTC().Format("2006-01") }

// Line item names of a usage report.
const (
	ItemCPU       = "cpu"
	ItemMemory    = "memory"
	ItemBandwidth = "bandwidth"
)

// ItemInstances, ItemAddon and ItemData name the per-size and per-add-on
// lines of a usage report.
func ItemInstances(size string) string { return "instances:" + size }
func ItemAddon(name string) string     { return "addon:" + name }
func ItemData(name string) string      { return "data:" + name }

// Describe is an item's quantity for people: "0.0123 CPU-hours".
func (i UsageItem) Describe() string {
	return fmt.Sprintf("%.6g %s", i.Quantity, i.Unit)
}
