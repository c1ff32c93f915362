package cli

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func appsCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apps",
		Short: "List apps; create, describe and destroy them",
		Args:  args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			apps, err := c.Apps(cmd.Context())
			if err != nil {
				return err
			}
			_, err = show(e, apps, "No apps yet. Create one: skiff apps create NAME", []string{"NAME", "RELEASE", "PROCESSES", "URL"},
				func(a skiff.AppInfo) []string {
					return []string{a.Name, releaseLabel(a.Current), instanceSummary(a), a.URL}
				})
			return err
		},
	}
	e.jsonFlag(cmd)
	cmd.AddCommand(appsCreateCommand(e), appsInfoCommand(e), appsDestroyCommand(e))
	return cmd
}

func appsCreateCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "create NAME",
		Short:   "Create an app",
		Long:    "Create an app. Names are 3 to 30 lowercase letters, digits and dashes, starting with a letter.",
		Example: "  skiff apps create shop",
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			info, err := c.CreateApp(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Created %s: %s\nDeploy it with: skiff deploy DIR -a %s\n", info.Name, info.URL, info.Name)
			return nil
		},
	}
}

func appsInfoCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "info [NAME]",
		Short:   "Describe an app",
		Example: "  skiff apps info shop",
		Args:    args(0, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			if len(a) == 1 {
				e.g.app = a[0]
			}
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			info, err := c.App(cmd.Context(), name)
			if err != nil {
				return err
			}
			if e.g.json {
				return e.printJSON(info)
			}
			domains := "none"
			if len(info.Domains) > 0 {
				domains = strings.Join(info.Domains, ", ")
			}
			size := "none"
			if info.ImageSize > 0 {
				size = skiff.HumanBytes(info.ImageSize)
			}
			fmt.Fprintf(e.stdout, "=== %s\n", info.Name)
			return e.table([][]string{
				{"URL:", info.URL},
				{"Release:", releaseLabel(info.Current) + latestNote(info)},
				{"Formation:", formationSummary(info.Formation)},
				{"Processes:", instanceSummary(info)},
				{"Domains:", domains},
				{"Image size:", size},
				{"Created:", info.CreatedAt.Local().Format(time.DateTime)},
			})
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	return cmd
}

func appsDestroyCommand(e *env) *cobra.Command {
	var confirm string
	cmd := &cobra.Command{
		Use:   "destroy NAME --confirm NAME",
		Short: "Delete an app with its processes, releases, config and domains",
		Long: `Delete an app: its processes stop, and its releases, images, config, domains
and logs are deleted. This cannot be undone, so the app's name must be given
twice, the second time with --confirm.`,
		Example: "  skiff apps destroy shop --confirm shop",
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			name := a[0]
			if confirm != name {
				return &skiff.Error{Kind: skiff.KindInvalid,
					Message: fmt.Sprintf("destroying %s deletes its processes, releases, config and domains for good", name),
					Hint:    "to go ahead, run: skiff apps destroy " + name + " --confirm " + name}
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			if err := c.DestroyApp(cmd.Context(), name); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Destroyed %s.\n", name)
			return nil
		},
	}
	cmd.Flags().StringVar(&confirm, "confirm", "", "the app's name again, to confirm")
	return cmd
}

func releaseLabel(v int) string {
	if v == 0 {
		return "none"
	}
	return skiff.VersionLabel(v)
}

func latestNote(info skiff.AppInfo) string {
	if info.Latest > info.Current {
		return fmt.Sprintf(" (latest %s did not take over; skiff releases -a %s)", skiff.VersionLabel(info.Latest), info.Name)
	}
	return ""
}

// formationSummary writes a formation as web=2 worker=1, web first.
func formationSummary(f map[string]int) string {
	if len(f) == 0 {
		return "none"
	}
	types := skiff.SortedTypes(f)
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%s=%d", t, f[t])
	}
	return strings.Join(parts, " ")
}

// instanceSummary writes instance counts by state, as "2 up, 1 starting".
func instanceSummary(info skiff.AppInfo) string {
	if len(info.Instances) == 0 {
		return "none"
	}
	states := make([]string, 0, len(info.Instances))
	for s := range info.Instances {
		states = append(states, string(s))
	}
	sort.Strings(states)
	parts := make([]string, len(states))
	for i, s := range states {
		parts[i] = fmt.Sprintf("%d %s", info.Instances[skiff.InstanceState(s)], s)
	}
	return strings.Join(parts, ", ")
}

// ago writes how long ago t was, coarsely.
func ago(t time.Time) string { return skiff.Ago(t, time.Now()) }
