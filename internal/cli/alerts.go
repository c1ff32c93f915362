package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func alertsCommand(e *env) *cobra.Command {
	var platform bool
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "List, add and remove alert rules, and see their alerts",
		Long: `Alert rules say when to raise an alert: an app has no web process up (app_down),
crash-loops (crash_loop), a backup failed (backup_failed), too many 5xx
answers (error_rate) or slow ones (p99); a node died (node_down) or its data
disk fills (disk). An alert fires once its condition has held --for, is told
again every hour while it lasts, and is told once more when it resolves.

Alerts are told as alert.firing and alert.resolved events (to the webhooks
that take them) and by email to the rule's --email addresses, when the
server has an SMTP relay (skiff server --smtp-addr).

When a node dies, one node_down alert names the apps that ran on it; those
apps raise no alert of their own while the scheduler starts them elsewhere.

--platform lists every rule (admins); with -a, the app's rules and the
platform's rules about every app, with the app's alerts.`,
		Example: `  skiff alerts -a shop
  skiff alerts add app_down -a shop --for 2m --email ops@example.com
  skiff alerts add node_down --email ops@example.com
  skiff alerts --platform`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			scope, c, err := e.scopeClient(platform)
			if err != nil {
				return err
			}
			rules, err := c.Alerts(cmd.Context(), scope)
			if err != nil {
				return err
			}
			empty := fmt.Sprintf("No alert rules. Add one: skiff alerts add app_down %s --email you@example.com", scopeFlag(scope))
			printed, err := show(e, rules, empty, []string{"ID", "KIND", "APP", "WHEN", "EMAILS", "STATE"}, func(r skiff.AlertRuleView) []string {
				app := r.App
				if app == "" {
					app = "(all)"
				}
				return []string{r.ID, r.Kind, app, r.Description, joinOr(r.Emails, "-"), alertsState(r.Alerts)}
			})
			if err != nil || !printed {
				return err
			}
			var rows [][]string
			for _, r := range rules {
				for _, a := range r.Alerts {
					rows = append(rows, []string{r.ID, strings.ToUpper(a.State), alertAge(a), a.Message})
				}
			}
			if len(rows) > 0 {
				fmt.Fprintln(e.stdout)
				return e.table(append([][]string{{"RULE", "ALERT", "SINCE", "MESSAGE"}}, rows...))
			}
			return nil
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	platformFlag(cmd, &platform, "every rule of the platform and its apps")

	var req skiff.AlertRuleRequest
	var forD, window time.Duration
	add := &cobra.Command{
		Use:   "add KIND",
		Short: "Add an alert rule",
		Long: `Add an alert rule of KIND: app_down, crash_loop, backup_failed, error_rate, p99
(about an app with -a, or about every app with --platform), node_down or disk
(about the nodes: admins, no -a).

  app_down       no web process up while the formation wants some, for --for (default 1m)
  crash_loop     a process exits soon after each of its last starts
  backup_failed  a backup or its check failed, and none succeeded since
  error_rate     over --threshold percent (default 5) of answers are 5xx over --window (default 5m)
  p99            the 99th percentile of response times is over --threshold ms (default 1000) over --window
  node_down      a node was declared dead
  disk           a node's data disk is over --threshold percent full (default 40, the planning limit)`,
		Example: `  skiff alerts add app_down -a shop --for 2m --email ops@example.com
  skiff alerts add error_rate -a shop --threshold 2 --window 10m
  skiff alerts add disk --threshold 70 --email ops@example.com`,
		Args: args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			req.Kind = a[0]
			scope, c, err := e.scopeClient(platform || skiff.PlatformAlert(req.Kind) && e.g.app == "")
			if err != nil {
				return err
			}
			req.For, req.Window = skiff.Duration(forD), skiff.Duration(window)
			r, err := c.AddAlertRule(cmd.Context(), scope, req)
			if err != nil {
				return err
			}
			if e.g.json {
				return e.printJSON(r)
			}
			tell := "alert events go to the webhooks that take them"
			if len(r.Emails) > 0 {
				tell += ", and email to " + strings.Join(r.Emails, ", ")
			}
			fmt.Fprintf(e.stdout, "Added alert rule %s: when %s (%s).\n", r.ID, r.Description, tell)
			return nil
		},
	}
	e.appFlag(add)
	e.jsonFlag(add)
	platformFlag(add, &platform, "a rule about every app")
	f := add.Flags()
	f.DurationVar(&forD, "for", 0, "how long the condition must hold before the alert fires, e.g. 2m")
	f.Float64Var(&req.Threshold, "threshold", 0, "percent for disk and error_rate, milliseconds for p99")
	f.DurationVar(&window, "window", 0, "what error_rate and p99 are measured over (default 5m, at most 1h)")
	f.StringSliceVar(&req.Emails, "email", nil, "addresses to email when the alert fires and resolves")

	remove := &cobra.Command{
		Use:     "remove ID",
		Aliases: []string{"rm"},
		Short:   "Remove an alert rule and its alerts",
		Example: "  skiff alerts remove -a shop 9c1e22f0",
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			scope, c, err := e.scopeClient(platform)
			if err != nil {
				return err
			}
			if err := c.RemoveAlertRule(cmd.Context(), scope, a[0]); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Removed alert rule %s of %s.\n", a[0], scopeName(scope))
			return nil
		},
	}
	e.appFlag(remove)
	platformFlag(remove, &platform, "a platform rule")
	cmd.AddCommand(add, remove)
	return cmd
}

// alertsState sums up a rule's alerts: how many fire, or ok.
func alertsState(as []skiff.Alert) string {
	n := map[string]int{}
	for _, a := range as {
		n[a.State]++
	}
	switch {
	case n[skiff.AlertFiring] > 0:
		return fmt.Sprintf("FIRING (%d)", n[skiff.AlertFiring])
	case n[skiff.AlertPending] > 0:
		return "pending"
	}
	return "ok"
}

// alertAge says since when an alert is in its state.
func alertAge(a skiff.Alert) string {
	switch a.State {
	case skiff.AlertFiring:
		return ago(a.FiredAt)
	case skiff.AlertResolved:
		return ago(a.ResolvedAt)
	}
	return ago(a.Since)
}
