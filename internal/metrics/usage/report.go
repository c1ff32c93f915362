package usage

import (
	"context"
	"fmt"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Report sums and prices the usage of a month (up to now for the current
// one): the folded hours from the usage_hours bucket, and the hours not
// folded yet from the samples in the streams. Apps named in req are in
// the report even if they used nothing; with req.All, every app that
// used something is.
func (m *Meter) Report(ctx context.Context, req skiff.UsageRequest) (skiff.UsageReport, error) {
	from, err := skiff.ParseMonth(req.Month)
	if err != nil {
		return skiff.UsageReport{}, err
	}
	end, now := from.AddDate(0, 1, 0), m.cfg.Now().UTC()
	month := skiff.MonthOf(from)
	if !req.All && len(req.Apps) == 0 {
		return Bill(month, from, clampTime(now, from, end), nil, m.cfg.Prices), nil
	}
	// The mark first: hours folded after it was read are read from the
	// samples again, which is the same.
	folded, err := m.folded(ctx)
	if err != nil {
		return skiff.UsageReport{}, fmt.Errorf("read usage: %w", err)
	}
	split := clampTime(folded, from, end)
	only := ""
	if !req.All && len(req.Apps) == 1 {
		only = req.Apps[0]
	}
	var records []skiff.UsageHour
	if split.After(from) {
		filter := "*." + month + ".*"
		if only != "" {
			filter = only + "." + month + ".*"
		}
		recs, err := m.st.UsageHours.Values(ctx, filter)
		if err != nil {
			return skiff.UsageReport{}, fmt.Errorf("read usage: %w", err)
		}
		for _, r := range recs {
			if r.Hour.Before(split) {
				records = append(records, r)
			}
		}
	}
	if split.Before(end) && !split.After(now) {
		f, err := m.fold(ctx, split, end, only)
		if err != nil {
			return skiff.UsageReport{}, fmt.Errorf("read usage: %w", err)
		}
		records = append(records, f.Records()...)
	}
	usage := Sum(records)
	if !req.All {
		wanted := map[string]skiff.UsageHour{}
		for _, app := range req.Apps {
			wanted[app] = usage[app]
		}
		usage = wanted
	}
	return Bill(month, from, clampTime(now, from, end), usage, m.cfg.Prices), nil
}

// clampTime is t, or lo if it is before, or hi if it is after.
func clampTime(t, lo, hi time.Time) time.Time {
	switch {
	case t.Before(lo):
		return lo
	case t.After(hi):
		return hi
	}
	return t
}
