package client

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// EventQuery selects events.
type EventQuery struct {
	Since string   // an age (1h, 2d) or an RFC 3339 time; empty: no bound
	Limit int      // the newest so many (0: the server's default, 100)
	Types []string // filters, as webhooks take them
}

// Events lists an app's events, oldest first; with app "" every app's and
// the platform's (admins only).
func (c *Client) Events(ctx context.Context, app string, q EventQuery) ([]skiff.Event, error) {
	v := url.Values{}
	if q.Since != "" {
		v.Set("since", q.Since)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	for _, t := range q.Types {
		v.Add("type", t)
	}
	path := "/v1/events"
	if app != "" {
		path = appPath(app, "events")
	}
	resp, err := c.request(ctx, "GET", path, v, nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var evs []skiff.Event
	if err := json.NewDecoder(resp.Body).Decode(&evs); err != nil {
		return nil, &skiff.Error{Kind: skiff.KindInternal, Message: "unreadable events", Err: err}
	}
	return evs, nil
}

// scopePath is the path of a collection of app's, or with app "" the
// platform's.
func scopePath(app, collection string, rest ...string) string {
	p := "/v1/" + collection
	if app != "" {
		p = appPath(app, collection)
	}
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// Webhooks lists an app's webhooks, or with app "" the platform's.
func (c *Client) Webhooks(ctx context.Context, app string) ([]skiff.WebhookView, error) {
	var out []skiff.WebhookView
	return out, c.call(ctx, "GET", scopePath(app, "webhooks"), nil, &out)
}

// AddWebhook adds a webhook; the answer holds its secret, shown this once.
func (c *Client) AddWebhook(ctx context.Context, app string, req skiff.WebhookRequest) (skiff.WebhookView, error) {
	var v skiff.WebhookView
	return v, c.call(ctx, "POST", scopePath(app, "webhooks"), req, &v)
}

// RemoveWebhook removes a webhook by its ID.
func (c *Client) RemoveWebhook(ctx context.Context, app, id string) error {
	return c.call(ctx, "DELETE", scopePath(app, "webhooks", id), nil, nil)
}

// Alerts lists alert rules with their alerts: an app's (and the
// platform's rules about it), or with app "" every rule.
func (c *Client) Alerts(ctx context.Context, app string) ([]skiff.AlertRuleView, error) {
	var out []skiff.AlertRuleView
	return out, c.call(ctx, "GET", scopePath(app, "alerts"), nil, &out)
}

// AddAlertRule adds an alert rule of app, or with app "" a platform-wide
// one.
func (c *Client) AddAlertRule(ctx context.Context, app string, req skiff.AlertRuleRequest) (skiff.AlertRuleView, error) {
	var v skiff.AlertRuleView
	return v, c.call(ctx, "POST", scopePath(app, "alerts"), req, &v)
}

// RemoveAlertRule removes an alert rule by its ID.
func (c *Client) RemoveAlertRule(ctx context.Context, app, id string) error {
	return c.call(ctx, "DELETE", scopePath(app, "alerts", id), nil, nil)
}
