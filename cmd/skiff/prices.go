package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/skiff-paas/skiff/internal/metrics/usage"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// priceFlags adds --prices FILE and the --price-* flags to f. The function
// returned, called once the flags are parsed, sets *to to the prices they
// give: the file's, with each flag given on top.
func priceFlags(f *pflag.FlagSet, to *skiff.Prices) func() error {
	var file, currency string
	var cpu, memory, bandwidth, data float64
	var instance, addon map[string]string
	f.StringVar(&file, "prices", "", "JSON or YAML file of the prices of usage (docs/usage.md); --price-* flags override it (default: everything free)")
	f.StringVar(&currency, "currency", skiff.DefaultCurrency, "currency of the prices, as shown on usage reports")
	f.Float64Var(&cpu, "price-cpu-hour", 0, "price of an hour of CPU time")
	f.Float64Var(&memory, "price-memory-gb-hour", 0, "price of a GB of memory held for an hour")
	f.StringToStringVar(&instance, "price-instance-hour", nil, "price of an hour of a process, by size, e.g. 1x=0.01,2x=0.02 (a size not given: 1x's times its factor)")
	f.Float64Var(&bandwidth, "price-bandwidth-gb", 0, "price of a GB sent to clients through the routers")
	f.StringToStringVar(&addon, "price-addon-hour", nil, "price of an hour of an add-on, by TYPE or TYPE:PLAN, e.g. postgres:shared=0.005,redis=0.01")
	f.Float64Var(&data, "price-database-gb-month", 0, "price of a GB of add-on data kept for a month")
	return func() error {
		p := skiff.Prices{Currency: currency}
		if file != "" {
			var err error
			if p, err = usage.LoadPrices(file); err != nil {
				return err
			}
		}
		set := func(name string, to *float64, v float64) {
			if f.Changed(name) {
				*to = v
			}
		}
		set("price-cpu-hour", &p.CPUHour, cpu)
		set("price-memory-gb-hour", &p.MemoryGBHour, memory)
		set("price-bandwidth-gb", &p.BandwidthGB, bandwidth)
		set("price-database-gb-month", &p.DatabaseGBMonth, data)
		if f.Changed("currency") || p.Currency == "" {
			p.Currency = currency
		}
		var err error
		if p.InstanceHour, err = priceMap("price-instance-hour", p.InstanceHour, instance); err != nil {
			return err
		}
		if p.AddonHour, err = priceMap("price-addon-hour", p.AddonHour, addon); err != nil {
			return err
		}
		if err := p.Validate(); err != nil {
			return fmt.Errorf("prices: %w", err)
		}
		*to = p
		return nil
	}
}

// priceMap adds the prices of a KEY=PRICE flag to those of the file.
func priceMap(flag string, have map[string]float64, given map[string]string) (map[string]float64, error) {
	if len(given) == 0 {
		return have, nil
	}
	out := map[string]float64{}
	for k, v := range have {
		out[k] = v
	}
	for k, v := range given {
		price, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("--%s: %s=%q: the price is not a number", flag, k, v)
		}
		out[k] = price
	}
	return out, nil
}
