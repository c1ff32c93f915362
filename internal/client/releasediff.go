package client

import (
	"context"
	"strconv"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// ReleaseDiff tells which config vars release version changed from the
// release before it, by name only.
func (c *Client) ReleaseDiff(ctx context.Context, app string, version int) (skiff.ConfigDiff, error) {
	var d skiff.ConfigDiff
	return d, c.call(ctx, "GET", appPath(app, "releases", strconv.Itoa(version), "diff"), nil, &d)
}
