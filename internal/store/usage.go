package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
	cons, err := s.JS.OrderedConsumer(ctx, skiff.StreamUsage, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{skiff.UsageSubject(app, "*")},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	if err != nil {
		return nil, fmt.Errorf("read usage of %s: %w", app, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read usage of %s: %w", app, err)
	}
	hours := map[time.Time]*UsageHour{}
	for left := info.NumPending; left > 0; {
		batch, err := cons.Fetch(int(min(left, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("read usage of %s: %w", app, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var u skiff.UsageSample
			if json.Unmarshal(m.Data(), &u) != nil {
				continue
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
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("read usage of %s: %w", app, err)
		}
		if n == 0 {
			break
		}
		left -= uint64(n)
	}
	out := make([]UsageHour, 0, len(hours))
	for _, h := range hours {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Hour.Before(out[j].Hour) })
	return out, nil
}
