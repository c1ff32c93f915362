package cli

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func configCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show and change an app's config vars",
		Long: `Show an app's config vars, the environment its processes run with. Setting or
unsetting vars makes a new release, which replaces the running processes
without dropping a request.`,
		Example: `  skiff config -a shop
  skiff config set -a shop GREETING=hello DATABASE_URL=postgres://…
  skiff config get -a shop GREETING
  skiff config unset -a shop GREETING`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			cfg, err := c.Config(cmd.Context(), name)
			if err != nil {
				return err
			}
			if e.g.json {
				return e.printJSON(cfg.Config)
			}
			if len(cfg.Config) == 0 {
				fmt.Fprintf(e.stdout, "%s has no config vars. Set some: skiff config set -a %s KEY=VALUE\n", name, name)
				return nil
			}
			fmt.Fprintf(e.stdout, "=== %s config vars\n", name)
			rows := make([][]string, 0, len(cfg.Config))
			for _, k := range sortedKeys(cfg.Config) {
				rows = append(rows, []string{k + ":", cfg.Config[k]})
			}
			return e.table(rows)
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	cmd.AddCommand(configSetCommand(e), configUnsetCommand(e), configGetCommand(e))
	return cmd
}

func configSetCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "set KEY=VALUE...",
		Short:   "Set config vars, making a new release",
		Example: "  skiff config set -a shop GREETING=hello MODE=fast",
		Args:    args(1, -1),
		RunE: func(cmd *cobra.Command, a []string) error {
			set := make(map[string]string, len(a))
			for _, kv := range a {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usageError(cmd, "%q is not KEY=VALUE", kv)
				}
				set[k] = v
			}
			return e.changeConfig(cmd, skiff.ConfigChange{Set: set}, "Setting "+strings.Join(sortedKeys(set), ", "))
		},
	}
	e.appFlag(cmd)
	return cmd
}

func configUnsetCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "unset KEY...",
		Short:   "Remove config vars, making a new release",
		Example: "  skiff config unset -a shop GREETING",
		Args:    args(1, -1),
		RunE: func(cmd *cobra.Command, a []string) error {
			for _, k := range a {
				if strings.Contains(k, "=") {
					return usageError(cmd, "unset takes names, not KEY=VALUE: %q", k)
				}
			}
			return e.changeConfig(cmd, skiff.ConfigChange{Unset: a}, "Unsetting "+strings.Join(a, ", "))
		},
	}
	e.appFlag(cmd)
	return cmd
}

func (e *env) changeConfig(cmd *cobra.Command, change skiff.ConfigChange, doing string) error {
	name, c, err := e.appClient()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s on %s... ", doing, name)
	resp, err := c.ChangeConfig(cmd.Context(), name, change)
	if err != nil {
		fmt.Fprintln(e.stdout, "failed")
		return err
	}
	if resp.Release > 0 {
		fmt.Fprintf(e.stdout, "done, %s (restarting the processes)\n", skiff.VersionLabel(resp.Release))
	} else {
		fmt.Fprintln(e.stdout, "done")
	}
	return nil
}

func configGetCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "get KEY",
		Short:   "Print one config var's value",
		Example: "  skiff config get -a shop GREETING",
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			cfg, err := c.Config(cmd.Context(), name)
			if err != nil {
				return err
			}
			v, ok := cfg.Config[a[0]]
			if !ok {
				return skiff.Errorf(skiff.KindNotFound, "skiff config -a "+name+" lists the vars that are set", "%s has no config var %s", name, a[0])
			}
			fmt.Fprintln(e.stdout, v)
			return nil
		},
	}
	e.appFlag(cmd)
	return cmd
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
