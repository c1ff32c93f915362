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
		Long: `Show an app's logs in one stream: its processes' output (app[web.1]), the
router's access log (router[router]) and the platform's messages about it
(skiff[build], skiff[scheduler], …). Each line starts with its UTC time.

--since starts the history at an age ago (30m, 1h, 2d) or at a time
(2026-11-24T10:00:00Z) and shows every line from then on, or the last -n of
them when -n is given. docs/logs.md tells how long lines are kept and how to
ship them elsewhere (skiff drains).`,
		Example: `  skiff logs -a shop
  skiff logs -a shop -f --ps web.1
  skiff logs -a shop --since 1h --source router
  skiff logs -a shop -n 500 --source platform`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if q.Tail < 0 {
				return usageError(cmd, "-n must be 0 or more")
			}
			if q.Since != "" && !cmd.Flags().Changed("num") {
				q.Tail = -1 // every line since then
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
	f := cmd.Flags()
	f.IntVarP(&q.Tail, "num", "n", 100, "how many lines of history to show")
	f.BoolVarP(&q.Follow, "follow", "f", false, "keep showing new lines as they come")
	f.StringVarP(&q.Process, "ps", "p", "", "only this process type or process (web, web.1)")
	f.StringVar(&q.Process, "process", "", "the same as --ps")
	f.StringVarP(&q.Source, "source", "s", "", "only lines from app, router or platform")
	f.StringVar(&q.Since, "since", "", "history from an age ago (1h, 2d) or a time (2026-11-24T10:00:00Z)")
	cmd.AddCommand(logRetentionCommand(e))
	return cmd
}

func logRetentionCommand(e *env) *cobra.Command {
	var maxAge, maxSize string
	cmd := &cobra.Command{
		Use:   "retention",
		Short: "Show or set how much of an app's logs is kept",
		Long: `Show or set how much of an app's logs the platform keeps: lines older than
--max-age, and the oldest lines past --max-size of the app's own, are purged
(within a minute or so). Each app has its own limits, so that a noisy app
cannot push a quiet app's history out. "default" returns a limit to the
server's (--log-max-age, --log-app-max-size).`,
		Example: `  skiff logs retention -a shop
  skiff logs retention -a shop --max-age 3d --max-size 128mb
  skiff logs retention -a shop --max-size default`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			var v skiff.LogRetentionView
			if cmd.Flags().Changed("max-age") || cmd.Flags().Changed("max-size") {
				var ch skiff.LogRetentionChange
				if cmd.Flags().Changed("max-age") {
					ch.MaxAge = &maxAge
				}
				if cmd.Flags().Changed("max-size") {
					ch.MaxSize = &maxSize
				}
				v, err = c.ChangeLogRetention(cmd.Context(), name, ch)
			} else {
				v, err = c.LogRetention(cmd.Context(), name)
			}
			if err != nil {
				return err
			}
			if e.g.json {
				return e.printJSON(v)
			}
			def := func(d bool) string {
				if d {
					return "(the server's default)"
				}
				return ""
			}
			return e.table([][]string{{"max-age", v.MaxAge, def(v.MaxAgeDefault)},
				{"max-size", skiff.HumanBytes(v.MaxSize), def(v.MaxSizeDefault)}, {"lines kept", fmt.Sprint(v.Lines), ""}})
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	cmd.Flags().StringVar(&maxAge, "max-age", "", "purge lines older than this: 7d, 12h, 1d12h (or default)")
	cmd.Flags().StringVar(&maxSize, "max-size", "", "keep at most this much of the app's logs: 64mb, 1gb (or default)")
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
