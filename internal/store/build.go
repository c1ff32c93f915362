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
	err := s.job(ctx, skiff.SubjectBuild, "skiff.build."+req.ID, req, onLine, &res,
		skiff.Errorf(skiff.KindUnavailable, "start skiff server with the builder role", "no builder is running to take the build"))
	return res, err
}

// AddonJob hands req to a node of the addons role and waits for its
// result, calling onLine with each line of progress. An error means the
// job could not be run or followed; a job that ran and failed is a result
// with Error set.
func (s *Store) AddonJob(ctx context.Context, req skiff.AddonRequest, onLine func(string)) (skiff.AddonResult, error) {
	var res skiff.AddonResult
	err := s.job(ctx, skiff.SubjectAddons, "skiff.addons."+req.ID, req, onLine, &res,
		skiff.Errorf(skiff.KindUnavailable, "start skiff server with the addons role", "no node of the addons role is running to take the job"))
	return res, err
}

// job sends req on subject to a worker in its queue group, then follows
// the job's subjects, prefix.out (lines) and prefix.done (the result,
// decoded into res). none is the error when no worker answers.
func (s *Store) job(ctx context.Context, subject, prefix string, req any, onLine func(string), res any, none error) error {
	sub, err := s.NC.SubscribeSync(prefix + ".*")
	if err != nil {
		return fmt.Errorf("follow %s: %w", prefix, err)
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, 64<<20)
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = s.NC.RequestWithContext(rctx, subject, data)
	cancel()
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) {
		return none
	}
	if err != nil {
		return fmt.Errorf("request %s: %w", prefix, err)
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return fmt.Errorf("follow %s: %w", prefix, err)
		}
		if strings.HasSuffix(m.Subject, ".out") {
			if onLine != nil {
				onLine(string(m.Data))
			}
			continue
		}
		if err := json.Unmarshal(m.Data, res); err != nil {
			return fmt.Errorf("decode result of %s: %w", prefix, err)
		}
		return nil
	}
}
