package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/client"
	"github.com/skiff-paas/skiff/internal/skiff"
)

func eventsCommand(e *env) *cobra.Command {
	var q client.EventQuery
	var all bool
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show what happened to an app, or to the whole platform",
		Long: `Show the events of an app, oldest first: deploys, releases, config changes,
scaling, restarts, rollbacks, crashes, out-of-memory kills, lost nodes,
backups, alerts. Without an app (or with --all), admins see every app's events
and the platform's own (node.dead, node.drain, platform-wide alerts).

--type keeps events of some kinds: all, a group (release, instance, node,
backup, alert, …), a short name (deploy, crash, oom, scale, config, restart,
rollback) or an exact type such as release.deployed. docs/alerts.md lists them.`,
		Example: `  skiff events -a shop
  skiff events -a shop --since 2h --type crash
  skiff events --all --since 1d --json`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			name := ""
			if !all {
				name, _ = e.appName() // none: every app's
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			evs, err := c.Events(cmd.Context(), name, q)
			if err != nil {
				return err
			}
			empty := "No events."
			header := []string{"TIME", "TYPE", "MESSAGE"}
			if name == "" {
				header = []string{"TIME", "APP", "TYPE", "MESSAGE"}
			}
			_, err = show(e, evs, empty, header, func(ev skiff.Event) []string {
				row := []string{ev.Time.Local().Format("2006-01-02 15:04:05"), ev.Type, ev.Message}
				if name == "" {
					app := ev.App
					if app == "" {
						app = "(platform)"
					}
					row = []string{row[0], app, row[1], row[2]}
				}
				return row
			})
			return err
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&q.Since, "since", "", "show events since an age (30m, 6h, 7d) or a time (2026-01-31T12:00:00Z)")
	f.IntVarP(&q.Limit, "num", "n", 100, "show at most the newest N events")
	f.StringSliceVar(&q.Types, "type", nil, "show only events of these kinds, e.g. deploy,crash")
	f.BoolVar(&all, "all", false, "every app's events and the platform's (admins)")
	cmd.MarkFlagsMutuallyExclusive("all", "app")
	return cmd
}

// joinOr joins a list, or says none.
func joinOr(list []string, none string) string {
	if len(list) == 0 {
		return none
	}
	return strings.Join(list, ",")
}
