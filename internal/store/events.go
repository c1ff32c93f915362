package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// EventQuery selects events from the EVENTS stream.
type EventQuery struct {
	// App keeps one app's events; "" keeps every app's and the
	// platform's, skiff.PlatformScope the platform's only.
	App string
	// Since keeps events recorded at or after it (zero: all there are).
	Since time.Time
	// Limit keeps only the newest Limit events (0: all).
	Limit int
	// Follow keeps delivering new events until the context ends.
	Follow bool
}

// ReadEvents calls fn with the events q selects, oldest first, and then,
// if q.Follow, with each new one until ctx ends.
func (s *Store) ReadEvents(ctx context.Context, q EventQuery, fn func(skiff.Event) error) error {
	filter := "events.>"
	if q.App != "" {
		filter = "events." + q.App + ".>"
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if !q.Since.IsZero() {
		since := q.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := s.JS.OrderedConsumer(ctx, skiff.StreamEvents, cfg)
	if err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	pending := info.NumPending
	var skip uint64
	if q.Limit > 0 && pending > uint64(q.Limit) {
		skip = pending - uint64(q.Limit)
	}
	return readMessages(ctx, cons, pending, skip, q.Follow, "read events", func(msg jetstream.Msg) error {
		var ev skiff.Event
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			s.log.Debug("unreadable event", "subject", msg.Subject(), "err", err)
			return nil
		}
		if ev.Time.Before(q.Since) { // stored late, or told of a time before
			return nil
		}
		return fn(ev)
	})
}

// readMessages calls fn with the messages cons delivers: the first
// pending of them less the first skip, and then, if follow, every later
// one until ctx ends. what names the reading in errors.
func readMessages(ctx context.Context, cons jetstream.Consumer, pending, skip uint64, follow bool, what string, fn func(jetstream.Msg) error) error {
	if pending == 0 && !follow {
		return nil
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer it.Stop()
	for n := uint64(0); follow || n < pending; n++ {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s: %w", what, err)
		}
		if n < skip {
			continue
		}
		if err := fn(msg); err != nil {
			return err
		}
	}
	return nil
}
