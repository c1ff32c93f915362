package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func maintenanceCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "maintenance [on|off]",
		Short: "Show, or turn on or off, an app's maintenance mode",
		Long: `In maintenance mode the router answers every request to the app with a 503
page ("down for maintenance", Retry-After: 5) while its processes keep
running, for instance during a migration. Without an argument, show whether
it is on.`,
		Example: `  skiff maintenance on -a shop
  skiff maintenance off -a shop`,
		Args:      args(0, 1),
		ValidArgs: []string{"on", "off"},
		RunE: func(cmd *cobra.Command, a []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			if len(a) == 0 {
				info, err := c.App(cmd.Context(), name)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "%s: maintenance mode is %s.\n", name, onOff(info.Maintenance))
				return nil
			}
			var on bool
			switch a[0] {
			case "on":
				on = true
			case "off":
			default:
				return usageError(cmd, "say on or off, not %q", a[0])
			}
			info, err := c.SetMaintenance(cmd.Context(), name, on)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s: maintenance mode is %s.\n", name, onOff(info.Maintenance))
			return nil
		},
	}
	e.appFlag(cmd)
	return cmd
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
