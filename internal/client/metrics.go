package client

import (
	"context"
	"net/url"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Metrics reads app's points from since to until (ages such as 1h, or
// RFC 3339 times; "" for an hour ago and now) at step (10s, 1m, 1h; ""
// or auto to let the server pick).
func (c *Client) Metrics(ctx context.Context, app, since, until, step string) (skiff.MetricsSeries, error) {
	var series skiff.MetricsSeries
	q := url.Values{}
	for k, v := range map[string]string{"since": since, "until": until, "step": step} {
		if v != "" {
			q.Set(k, v)
		}
	}
	path := appPath(app, "metrics")
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return series, c.call(ctx, "GET", path, nil, &series)
}
