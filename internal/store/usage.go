package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// RecordUsage stores a usage sample in the USAGE stream, for metering.
func (s *Store) RecordUsage(ctx context.Context, u skiff.UsageSample) error {
	data, err := json.Marshal(u)
	if err != nil {
		return err
	}
	if _, err := s.JS.Publish(ctx, skiff.UsageSubject(u.App, u.ID), data); err != nil {
		return fmt.Errorf("record usage of %s %s: %w", u.App, u.Instance, err)
	}
	return nil
}

// UsageHour is what an app used in one hour, summed from its samples.
type UsageHour struct {
	Hour          time.Time `json:"hour"`
	CPUSeconds    float64   `json:"cpu_seconds"`
	MemoryGBHours float64   `json:"memory_gb_hours"` // GiB held for an hour
	InstanceHours float64   `json:"instance_hours"`
}

// UsageByHour sums app's usage samples from since on, per hour (UTC), in
// time order. A sample counts in the hour its measurement ended.
func (s *Store) UsageByHour(ctx context.Context, app string, since time.Time) ([]UsageHour, error) {
	hours := map[time.Time]*UsageHour{}
	err := s.Scan(ctx, skiff.StreamUsage, []string{skiff.UsageSubject(app, "*")}, since, func(_ string, data []byte, _ time.Time) bool {
		var u skiff.UsageSample
		if json.Unmarshal(data, &u) != nil {
			return true
		}
		hour := u.Time.UTC().Truncate(time.Hour)
		h := hours[hour]
		if h == nil {
			h = &UsageHour{Hour: hour}
			hours[hour] = h
		}
		h.CPUSeconds += u.CPUSeconds
		h.MemoryGBHours += u.MemoryByteSeconds / (1 << 30) / 3600
		h.InstanceHours += u.Interval / 3600
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("read usage of %s: %w", app, err)
	}
	out := make([]UsageHour, 0, len(hours))
	for _, h := range hours {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Hour.Before(out[j].Hour) })
	return out, nil
}
