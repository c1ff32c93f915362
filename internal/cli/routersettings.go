package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func routerCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "router",
		Short: "Show or change how the router treats an app's requests",
		Long: `Show or change an app's router settings:

  balance=least-connections|round-robin  how requests are spread over its web
                                         processes (least-connections: the less
                                         busy of two taken at random)
  sticky=on|off                          a client's requests go to the same web
                                         process while it is up (by a cookie)
  https-redirect=on|off                  plain HTTP requests are redirected to
                                         HTTPS
  error-page=FILE                        a file of the app (public/50x.html)
                                         sent when it cannot answer: no web
                                         process up, or none answered ("" for
                                         the router's own page)
  maintenance-page=FILE                  a file of the app sent in maintenance
                                         mode ("" for the router's own page)`,
		Example: `  skiff router -a shop
  skiff router set -a shop sticky=on https-redirect=on`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			s, err := c.RouterSettings(cmd.Context(), name)
			if err != nil {
				return err
			}
			return printRouterSettings(e, s)
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	set := &cobra.Command{
		Use:     "set SETTING=VALUE...",
		Short:   "Change router settings",
		Example: "  skiff router set -a shop balance=round-robin sticky=on",
		Args:    args(1, -1),
		RunE: func(cmd *cobra.Command, a []string) error {
			var ch skiff.RouterChange
			for _, arg := range a {
				k, v, ok := strings.Cut(arg, "=")
				if !ok {
					return usageError(cmd, "%q is not SETTING=VALUE", arg)
				}
				switch k {
				case "balance":
					ch.Balance = &v
				case "sticky", "https-redirect":
					on, err := parseOnOff(v)
					if err != nil {
						return usageError(cmd, "%s: %v", k, err)
					}
					if k == "sticky" {
						ch.Sticky = &on
					} else {
						ch.HTTPSRedirect = &on
					}
				case "error-page":
					ch.ErrorPage = &v
				case "maintenance-page":
					ch.MaintenancePage = &v
				default:
					return usageError(cmd, "unknown setting %q: balance, sticky, https-redirect, error-page or maintenance-page", k)
				}
			}
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			s, err := c.ChangeRouterSettings(cmd.Context(), name, ch)
			if err != nil {
				return err
			}
			return printRouterSettings(e, s)
		},
	}
	e.appFlag(set)
	e.jsonFlag(set)
	cmd.AddCommand(set)
	return cmd
}

func parseOnOff(v string) (bool, error) {
	switch v {
	case "on", "true", "yes":
		return true, nil
	case "off", "false", "no":
		return false, nil
	}
	return false, fmt.Errorf("say on or off, not %q", v)
}

func printRouterSettings(e *env, s skiff.RouterSettings) error {
	if e.g.json {
		return e.printJSON(s)
	}
	page := func(name string) string {
		if name == "" {
			return "(the router's)"
		}
		return name
	}
	return e.table([][]string{{"balance", s.Balance}, {"sticky", onOff(s.Sticky)}, {"https-redirect", onOff(s.HTTPSRedirect)},
		{"error-page", page(s.ErrorPage)}, {"maintenance-page", page(s.MaintenancePage)}})
}
