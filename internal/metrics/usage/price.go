package usage

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Price turns an app's usage into the lines of its bill: CPU, memory,
// instance-hours of each process size, bandwidth, and each add-on's hours
// and data, each its quantity in the unit it is priced by times the unit
// price. The CPU, memory and bandwidth lines are always there; the others
// where there was usage.
func Price(u skiff.UsageHour, p skiff.Prices) skiff.AppUsage {
	var items []skiff.UsageItem
	add := func(item, desc string, qty float64, unit string, price float64) {
		items = append(items, skiff.UsageItem{Item: item, Description: desc, Quantity: qty, Unit: unit,
			UnitPrice: price, Cost: qty * price})
	}
	add(skiff.ItemCPU, "CPU time", u.CPUSeconds/3600, "CPU-hour", p.CPUHour)
	add(skiff.ItemMemory, "Memory", u.MemoryGBHours, "GB-hour", p.MemoryGBHour)
	for _, size := range slices.Sorted(maps.Keys(u.InstanceHours)) {
		add(skiff.ItemInstances(size), size+" processes", u.InstanceHours[size], "hour", p.InstancePrice(size))
	}
	add(skiff.ItemBandwidth, "Bandwidth out", float64(u.BandwidthBytes)/gib, "GB", p.BandwidthGB)
	for _, name := range slices.Sorted(maps.Keys(u.Addons)) {
		a := u.Addons[name]
		add(skiff.ItemAddon(name), fmt.Sprintf("%s (%s, %s)", name, a.Type, a.Plan), a.Hours, "hour", p.AddonPrice(a.Type, a.Plan))
		add(skiff.ItemData(name), name+" data", a.GBHours/skiff.GBMonthHours, "GB-month", p.DatabaseGBMonth)
	}
	out := skiff.AppUsage{App: u.App, Usage: u, Items: items}
	for _, it := range items {
		out.Total += it.Cost
	}
	return out
}

// Bill prices the usage of each app over a month's span into a report,
// apps in name order.
func Bill(month string, from, to time.Time, usage map[string]skiff.UsageHour, p skiff.Prices) skiff.UsageReport {
	r := skiff.UsageReport{Month: month, From: from, To: to, Currency: p.Currency, Apps: []skiff.AppUsage{}, Prices: p}
	for _, app := range slices.Sorted(maps.Keys(usage)) {
		u := usage[app]
		u.App, u.Hour = app, from
		a := Price(u, p)
		r.Apps = append(r.Apps, a)
		r.Total += a.Total
	}
	return r
}
