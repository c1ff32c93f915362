package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Build hands req to a builder and waits for its result, calling onLine
// with each line of output as it comes. An error means the build could not
// be run or followed; a build that ran and failed is a result with Error
// set.
func (s *Store) Build(ctx context.Context, req skiff.BuildRequest, onLine func(string)) (skiff.BuildResult, error) {
	var res skiff.BuildResult
	sub, err := s.NC.SubscribeSync("skiff.build." + req.ID + ".*")
	if err != nil {
		return res, fmt.Errorf("follow build: %w", err)
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, 64<<20)
	data, err := json.Marshal(req)
	if err != nil {
		return res, err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = s.NC.RequestWithContext(rctx, skiff.SubjectBuild, data)
	cancel()
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) {
		return res, skiff.Errorf(skiff.KindUnavailable, "start skiff server with the builder role",
			"no builder is running to take the build")
	}
	if err != nil {
		return res, fmt.Errorf("request build: %w", err)
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return res, fmt.Errorf("follow build %s: %w", req.ID, err)
		}
		if strings.HasSuffix(m.Subject, ".out") {
			if onLine != nil {
				onLine(string(m.Data))
			}
			continue
		}
		if err := json.Unmarshal(m.Data, &res); err != nil {
			return res, fmt.Errorf("decode build result: %w", err)
		}
		return res, nil
	}
}
