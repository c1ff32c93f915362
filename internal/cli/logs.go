package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/client"
	"github.com/skiff-paas/skiff/internal/skiff"
)

func logsCommand(e *env) *cobra.Command {
	var q client.LogQuery
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Show an app's logs: its output and the platform's events",
		Long: `Show an app's logs in one stream: its processes' output (app[web.1]) and the
platform's messages about it (skiff[build], skiff[scheduler], …). Each line
starts with its UTC time.`,
		Example: `  skiff logs -a shop
  skiff logs -a shop -f --ps web.1
  skiff logs -a shop -n 500 --source platform`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if q.Tail < 0 {
				return usageError(cmd, "-n must be 0 or more")
			}
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			enc := json.NewEncoder(e.stdout)
			return c.Logs(cmd.Context(), name, q, func(l skiff.LogLine) error {
				if e.g.json {
					return enc.Encode(l)
				}
				_, err := fmt.Fprintln(e.stdout, FormatLogLine(l))
				return err
			})
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	cmd.Flags().IntVarP(&q.Tail, "num", "n", 100, "how many lines of history to show")
	cmd.Flags().BoolVarP(&q.Follow, "follow", "f", false, "keep showing new lines as they come")
	cmd.Flags().StringVarP(&q.Process, "ps", "p", "", "only this process type or process (web, web.1)")
	cmd.Flags().StringVarP(&q.Source, "source", "s", "", "only lines from app, router or platform")
	return cmd
}

// FormatLogLine writes a log line as Heroku does:
// 2026-11-24T13:53:00.123456Z app[web.1]: listening on 5000
func FormatLogLine(l skiff.LogLine) string {
	source := l.Source
	if source == skiff.SourcePlatform {
		source = "skiff"
	}
	return fmt.Sprintf("%s %s[%s]: %s", l.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), source, l.Process, l.Line)
}
