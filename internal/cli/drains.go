package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func drainsCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drains",
		Short: "List, add and remove an app's log drains",
		Long: `A log drain ships every line of an app's logs (its output, the router's and
the platform's lines) to a receiver as it comes:

  syslog://HOST:PORT        RFC 5424 syslog over TCP, octet-counted frames
  syslog+tls://HOST:PORT    the same over TLS; the receiver's certificate is
                            checked (a private CA: skiff server --drain-ca)
  https://HOST/PATH         batches POSTed as Heroku's HTTPS drains do
                            (Content-Type: application/logplex-1)

Lines wait in a buffer while a receiver is down, and are sent again with
backoff; past the buffer the oldest are dropped, and the drain's DROPPED
count and a platform line say so. docs/logs.md has receiver configs.`,
		Example: `  skiff drains -a shop
  skiff drains add -a shop syslog+tls://logs.example.com:6514
  skiff drains remove -a shop 1a2b3c4d`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			ds, err := c.Drains(cmd.Context(), name)
			if err != nil {
				return err
			}
			_, err = show(e, ds, fmt.Sprintf("%s has no log drains. Add one: skiff drains add -a %s URL", name, name),
				[]string{"ID", "URL", "STATE", "SENT", "DROPPED", "LAST ERROR"}, func(d skiff.DrainView) []string {
					row := []string{d.ID, d.URL, d.State, "0", "0", ""}
					if s := d.Status; s != nil {
						row[3], row[4] = fmt.Sprint(s.Sent), fmt.Sprint(s.Dropped)
						if s.Error != "" {
							row[5] = ago(s.ErrorAt) + ": " + s.Error
						}
					}
					return row
				})
			return err
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	add := &cobra.Command{
		Use:   "add URL",
		Short: "Ship the app's logs to a receiver",
		Example: `  skiff drains add -a shop syslog://logs.example.com:514
  skiff drains add -a shop https://user:secret@logs.example.com/skiff`,
		Args: args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			d, err := c.AddDrain(cmd.Context(), name, a[0])
			if err != nil {
				return err
			}
			if e.g.json {
				return e.printJSON(d)
			}
			fmt.Fprintf(e.stdout, "Added drain %s: %s's logs go to %s.\n", d.ID, name, d.URL)
			return nil
		},
	}
	e.appFlag(add)
	e.jsonFlag(add)
	remove := &cobra.Command{
		Use:     "remove URL|ID",
		Aliases: []string{"rm"},
		Short:   "Stop shipping the app's logs to a receiver",
		Example: "  skiff drains remove -a shop syslog://logs.example.com:514",
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			if err := c.RemoveDrain(cmd.Context(), name, a[0]); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Removed drain %s from %s.\n", a[0], name)
			return nil
		},
	}
	e.appFlag(remove)
	cmd.AddCommand(add, remove)
	return cmd
}
