package client

import (
	"context"
	"io"
	"net/url"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// usageQuery is the query of GET /v1/usage.
func usageQuery(month, app, format string) url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"month": month, "app": app, "format": format} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// Usage reports the usage and cost over month (YYYY-MM; "" for the
// current one) of app, or of every app the token may see when app is "".
func (c *Client) Usage(ctx context.Context, month, app string) (skiff.UsageReport, error) {
	var rep skiff.UsageReport
	path := "/v1/usage"
	if q := usageQuery(month, app, ""); len(q) > 0 {
		path += "?" + q.Encode()
	}
	return rep, c.call(ctx, "GET", path, nil, &rep)
}

// UsageCSV writes the report Usage returns, as CSV, to w.
func (c *Client) UsageCSV(ctx context.Context, month, app string, w io.Writer) error {
	resp, err := c.request(ctx, "GET", "/v1/usage", usageQuery(month, app, "csv"), nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return &skiff.Error{Kind: skiff.KindUnavailable, Message: "the usage report broke off", Hint: "run the command again", Err: err}
	}
	return nil
}
