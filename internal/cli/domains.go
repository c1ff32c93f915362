package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func domainsCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "domains",
		Short: "List, add and remove an app's custom domains",
		Long: `Every app answers at NAME.DOMAIN. Custom domains route more hostnames to it;
point their DNS at the router.`,
		Example: `  skiff domains -a shop
  skiff domains add -a shop www.shop.example`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			ds, err := c.Domains(cmd.Context(), name)
			if err != nil {
				return err
			}
			_, err = show(e, ds, fmt.Sprintf("%s has no custom domains. Add one: skiff domains add -a %s HOST", name, name),
				[]string{"HOSTNAME", "ADDED"}, func(d skiff.Domain) []string { return []string{d.Hostname, ago(d.CreatedAt)} })
			return err
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	add := &cobra.Command{
		Use:     "add HOST",
		Short:   "Route a hostname to the app",
		Example: "  skiff domains add -a shop www.shop.example",
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			d, err := c.AddDomain(cmd.Context(), name, a[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Added %s to %s. Point its DNS at the router.\n", d.Hostname, name)
			return nil
		},
	}
	remove := &cobra.Command{
		Use:     "remove HOST",
		Aliases: []string{"rm"},
		Short:   "Stop routing a hostname to the app",
		Example: "  skiff domains remove -a shop www.shop.example",
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			if err := c.RemoveDomain(cmd.Context(), name, a[0]); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Removed %s from %s.\n", a[0], name)
			return nil
		},
	}
	e.appFlag(add)
	e.appFlag(remove)
	cmd.AddCommand(add, remove)
	return cmd
}
