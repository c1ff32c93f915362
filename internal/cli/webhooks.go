package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/client"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// scopeClient resolves what a webhooks or alerts command is about: the
// platform ("") with --platform, else the app.
func (e *env) scopeClient(platform bool) (string, *client.Client, error) {
	if platform {
		c, err := e.client()
		return "", c, err
	}
	return e.appClient()
}

// platformFlag adds --platform to cmd.
func platformFlag(cmd *cobra.Command, platform *bool, what string) {
	cmd.Flags().BoolVar(platform, "platform", false, what+" (admins)")
	cmd.MarkFlagsMutuallyExclusive("platform", "app")
}

func webhooksCommand(e *env) *cobra.Command {
	var platform bool
	cmd := &cobra.Command{
		Use:   "webhooks",
		Short: "List, add and remove webhooks that receive an app's events",
		Long: `A webhook receives an app's events as POSTs of JSON (or, with --format slack,
Slack messages), each signed in its Skiff-Signature header: t=TIME,v1=HMAC,
the HMAC-SHA256 of "TIME.BODY" with the webhook's secret. A delivery that
fails (not a 2xx answer within 10 s) is tried again with growing waits, five
times over about ten minutes. The list shows how each webhook's last delivery
went; --json shows its last deliveries.

Platform webhooks (--platform, admins) receive every app's events and the
platform's own, such as node.dead and platform-wide alerts.
docs/alerts.md shows how to check a signature.`,
		Example: `  skiff webhooks -a shop
  skiff webhooks add -a shop https://hooks.example.com/skiff --events deploy,crash
  skiff webhooks add --platform https://hooks.slack.com/services/T0/B0/XX --format slack --events alert,node`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			scope, c, err := e.scopeClient(platform)
			if err != nil {
				return err
			}
			hooks, err := c.Webhooks(cmd.Context(), scope)
			if err != nil {
				return err
			}
			empty := fmt.Sprintf("No webhooks. Add one: skiff webhooks add %s URL", scopeFlag(scope))
			_, err = show(e, hooks, empty, []string{"ID", "URL", "EVENTS", "FORMAT", "LAST DELIVERY"}, func(h skiff.WebhookView) []string {
				return []string{h.ID, h.URL, joinOr(h.Events, "all"), h.Format, lastDelivery(h.Deliveries)}
			})
			return err
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	platformFlag(cmd, &platform, "the platform's webhooks")

	var req skiff.WebhookRequest
	add := &cobra.Command{
		Use:   "add URL",
		Short: "Send the app's events to a URL",
		Long: `Send the app's events to URL. --events chooses which: all (the default), a
group (release, instance, node, backup, alert, …), a short name (deploy,
crash, oom, scale, config, restart, rollback) or an exact type. Without
--secret a signing secret is made; it is shown once, here.`,
		Example: `  skiff webhooks add -a shop https://hooks.example.com/skiff --events deploy,crash
  skiff webhooks add -a shop https://hooks.slack.com/services/T0/B0/XX --format slack`,
		Args: args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			scope, c, err := e.scopeClient(platform)
			if err != nil {
				return err
			}
			req.URL = a[0]
			h, err := c.AddWebhook(cmd.Context(), scope, req)
			if err != nil {
				return err
			}
			if e.g.json {
				return e.printJSON(h)
			}
			fmt.Fprintf(e.stdout, "Added webhook %s: %s events of %s go to %s (format %s).\n", h.ID, joinOr(h.Events, "all"), scopeName(scope), h.URL, h.Format)
			if req.Secret == "" {
				fmt.Fprintf(e.stdout, "Signing secret: %s\nKeep it: it is not shown again. Deliveries carry Skiff-Signature: t=TIME,v1=HMAC-SHA256(secret, \"TIME.BODY\").\n", h.Secret)
			}
			return nil
		},
	}
	e.appFlag(add)
	e.jsonFlag(add)
	platformFlag(add, &platform, "a platform webhook: every app's events and the platform's")
	add.Flags().StringSliceVar(&req.Events, "events", nil, "which events to send, e.g. deploy,crash,alert (default all)")
	add.Flags().StringVar(&req.Format, "format", "skiff", "skiff (the event as JSON) or slack ({\"text\": …} for incoming webhooks)")
	add.Flags().StringVar(&req.Secret, "secret", "", "the signing secret, at least 16 characters (default: one is made)")

	remove := &cobra.Command{
		Use:     "remove ID",
		Aliases: []string{"rm"},
		Short:   "Remove a webhook",
		Example: "  skiff webhooks remove -a shop 3fa2c1d0",
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			scope, c, err := e.scopeClient(platform)
			if err != nil {
				return err
			}
			if err := c.RemoveWebhook(cmd.Context(), scope, a[0]); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Removed webhook %s of %s.\n", a[0], scopeName(scope))
			return nil
		},
	}
	e.appFlag(remove)
	platformFlag(remove, &platform, "a platform webhook")
	cmd.AddCommand(add, remove)
	return cmd
}

// scopeFlag is how a command names scope: -a APP or --platform.
func scopeFlag(scope string) string {
	if scope == "" {
		return "--platform"
	}
	return "-a " + scope
}

// scopeName names scope in sentences.
func scopeName(scope string) string {
	if scope == "" {
		return "the platform"
	}
	return scope
}

// lastDelivery says how the newest delivery went.
func lastDelivery(ds []skiff.DeliveryResult) string {
	if len(ds) == 0 {
		return "none yet"
	}
	d := ds[0]
	what := d.State
	switch {
	case d.State == skiff.DeliveryDelivered && d.Status != 0:
		what = fmt.Sprintf("%d", d.Status)
	case d.Error != "":
		what += ": " + d.Error
	}
	if d.Attempts > 1 {
		what += fmt.Sprintf(" (try %d)", d.Attempts)
	}
	return strings.Join([]string{d.Event, what, ago(d.Time)}, ", ")
}
