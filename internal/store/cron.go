package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// ClaimCronSlot creates run at key in the cron bucket, to expire after
// ttl, if nothing is there. It reports false, and no error, when the key
// exists: the slot was claimed already, by this runner or another.
func (s *Store) ClaimCronSlot(ctx context.Context, key string, run skiff.CronRun, ttl time.Duration) (bool, error) {
	data, err := json.Marshal(run)
	if err != nil {
		return false, err
	}
	_, err = s.Cron.kv.Create(ctx, key, data, jetstream.KeyTTL(ttl))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim cron slot %s: %w", key, err)
	}
	return true, nil
}
