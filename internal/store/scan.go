package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Scan calls fn with each message of stream whose subject matches one of
// subjects (every message when none), from the first stored at or after
// since (the zero time: from the first), in the order of the stream, until fn returns false or every
// message that was stored when Scan began has been read. A stream that
// does not exist holds no message.
func (s *Store) Scan(ctx context.Context, stream string, subjects []string, since time.Time,
	fn func(subject string, data []byte, stored time.Time) bool) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: subjects}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := s.JS.OrderedConsumer(ctx, stream, cfg)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read stream %s: %w", stream, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("read stream %s: %w", stream, err)
	}
	for left := info.NumPending; left > 0; {
		batch, err := cons.Fetch(int(min(left, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("read stream %s: %w", stream, err)
		}
		n, more := 0, true
		for m := range batch.Messages() {
			n++
			if !more {
				continue // the rest of the batch, unread
			}
			var stored time.Time
			if md, err := m.Metadata(); err == nil {
				stored = md.Timestamp
			}
			more = fn(m.Subject(), m.Data(), stored)
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("read stream %s: %w", stream, err)
		}
		if n == 0 || !more {
			break
		}
		left -= uint64(min(uint64(n), left))
	}
	return nil
}
