package client

import (
	"context"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Cron lists the scheduled jobs of an app's current release.
func (c *Client) Cron(ctx context.Context, app string) ([]skiff.CronJobView, error) {
	var jobs []skiff.CronJobView
	return jobs, c.call(ctx, "GET", appPath(app, "cron"), nil, &jobs)
}
