package client

import (
	"context"
	"net/url"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// LogRetention returns how much of an app's logs the platform keeps.
func (c *Client) LogRetention(ctx context.Context, app string) (skiff.LogRetentionView, error) {
	var v skiff.LogRetentionView
	return v, c.call(ctx, "GET", appPath(app, "logs", "retention"), nil, &v)
}

// ChangeLogRetention sets an app's log retention.
func (c *Client) ChangeLogRetention(ctx context.Context, app string, ch skiff.LogRetentionChange) (skiff.LogRetentionView, error) {
	var v skiff.LogRetentionView
	return v, c.call(ctx, "PATCH", appPath(app, "logs", "retention"), ch, &v)
}

// Drains lists an app's log drains.
func (c *Client) Drains(ctx context.Context, app string) ([]skiff.DrainView, error) {
	var ds []skiff.DrainView
	return ds, c.call(ctx, "GET", appPath(app, "drains"), nil, &ds)
}

// AddDrain ships an app's logs to a receiver at rawURL.
func (c *Client) AddDrain(ctx context.Context, app, rawURL string) (skiff.DrainView, error) {
	var d skiff.DrainView
	return d, c.call(ctx, "POST", appPath(app, "drains"), skiff.DrainRequest{URL: rawURL}, &d)
}

// RemoveDrain removes a drain named by its ID or URL.
func (c *Client) RemoveDrain(ctx context.Context, app, ref string) error {
	return c.call(ctx, "DELETE", appPath(app, "drains", url.PathEscape(ref)), nil, nil)
}
