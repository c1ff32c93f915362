package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func healthCheckCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "healthcheck",
		Aliases: []string{"healthchecks"},
		Short:   "Show, set or remove the path web processes must answer",
		Long: `A web process takes traffic once its health check path answers 2xx or 3xx
(without one, once it accepts connections), and is restarted when the path
fails three times in a row while it runs. The path set here overrides
app.json's; setting or removing it makes a new release.`,
		Example: `  skiff healthcheck -a shop
  skiff healthcheck set -a shop /health
  skiff healthcheck unset -a shop`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			v, err := c.HealthCheck(cmd.Context(), name)
			if err != nil {
				return err
			}
			if e.g.json {
				return e.printJSON(v)
			}
			printHealthCheck(e, name, v)
			return nil
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	set := &cobra.Command{
		Use:     "set PATH",
		Short:   "Set the app's health check path",
		Example: "  skiff healthcheck set -a shop /health",
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			return changeHealthCheck(e, cmd, a[0])
		},
	}
	unset := &cobra.Command{
		Use:     "unset",
		Aliases: []string{"remove"},
		Short:   "Remove the app's own health check path (app.json's applies again)",
		Example: "  skiff healthcheck unset -a shop",
		Args:    args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return changeHealthCheck(e, cmd, "")
		},
	}
	e.appFlag(set)
	e.appFlag(unset)
	cmd.AddCommand(set, unset)
	return cmd
}

func changeHealthCheck(e *env, cmd *cobra.Command, path string) error {
	name, c, err := e.appClient()
	if err != nil {
		return err
	}
	v, err := c.SetHealthCheck(cmd.Context(), name, path)
	if err != nil {
		return err
	}
	printHealthCheck(e, name, v)
	if v.Release > 0 {
		fmt.Fprintf(e.stdout, "Released %s: new web processes take traffic once it answers.\n", skiff.VersionLabel(v.Release))
	}
	return nil
}

func printHealthCheck(e *env, app string, v skiff.HealthCheckView) {
	switch v.Source {
	case "":
		fmt.Fprintf(e.stdout, "%s has no health check: a web process takes traffic once it accepts connections.\n", app)
	case "app.json":
		fmt.Fprintf(e.stdout, "%s's health check: GET %s (from app.json)\n", app, v.Path)
	default:
		fmt.Fprintf(e.stdout, "%s's health check: GET %s\n", app, v.Path)
	}
}
