package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

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

// UsageReport asks a node of the metrics role for a month's usage report.
func (s *Store) UsageReport(ctx context.Context, req skiff.UsageRequest) (skiff.UsageReport, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return skiff.UsageReport{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	m, err := s.NC.RequestWithContext(rctx, skiff.SubjectUsage, data)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return skiff.UsageReport{}, skiff.Errorf(skiff.KindUnavailable, "start skiff server with the metrics role (it is among the default roles)",
			"no node of the metrics role is running to report usage")
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return skiff.UsageReport{}, skiff.Errorf(skiff.KindUnavailable, "try again; the metrics role's log says what keeps it busy",
			"the metrics role did not answer within a minute")
	case err != nil:
		return skiff.UsageReport{}, fmt.Errorf("usage report: %w", err)
	}
	var ans skiff.UsageAnswer
	if err := json.Unmarshal(m.Data, &ans); err != nil {
		return skiff.UsageReport{}, fmt.Errorf("usage report: %w", err)
	}
	if e := ans.Error; e != nil {
		return skiff.UsageReport{}, &skiff.Error{Kind: e.Code, Message: e.Error, Hint: e.Hint}
	}
	if ans.Report == nil {
		return skiff.UsageReport{}, errors.New("usage report: an empty answer")
	}
	return *ans.Report, nil
}
