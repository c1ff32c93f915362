package cli

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func cronCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cron",
		Short: "List an app's scheduled jobs, with their next and last runs",
		Long: `List the scheduled jobs of the app's current release: the cron entries of its
app.json. Each runs its command as a one-off process (like skiff run --detach)
at each time its schedule names, in UTC, exactly once across the platform; its
output is in skiff logs, under the run's name.

Change the jobs by changing app.json's cron and deploying; a rollback brings
back the jobs of the release rolled back to. docs/cron.md has the details.`,
		Example: "  skiff cron -a shop",
		Args:    args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			jobs, err := c.Cron(cmd.Context(), name)
			if err != nil {
				return err
			}
			empty := fmt.Sprintf(`%s has no scheduled jobs. Add them to app.json and deploy: "cron": [{"command": "…", "schedule": "0 3 * * *"}]`, name)
			header := []string{"JOB", "SCHEDULE", "COMMAND", "NEXT RUN (UTC)", "LAST RUN"}
			_, err = show(e, jobs, empty, header, func(j skiff.CronJobView) []string {
				return []string{strconv.Itoa(j.Index), j.Schedule, j.Command, nextRun(j.NextRun), lastRun(j.LastRun)}
			})
			return err
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	return cmd
}

// nextRun shows when a job runs next: the UTC time and how soon.
func nextRun(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Until(t).Round(time.Second)
	soon := ""
	switch {
	case d < time.Minute:
		soon = fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		soon = fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		soon = fmt.Sprintf("%dh", int(d.Hours()))
	default:
		soon = fmt.Sprintf("%dd", int(d.Hours()/24))
	}
	return t.UTC().Format("2006-01-02 15:04") + " (in " + soon + ")"
}

// lastRun shows how a job last ran: when, and as which process, or why
// it did not start.
func lastRun(r *skiff.CronRun) string {
	switch {
	case r == nil:
		return "never"
	case r.Error != "":
		return ago(r.Slot) + ", did not start: " + r.Error
	}
	return ago(r.Slot) + " as " + r.Name
}
