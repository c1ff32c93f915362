package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func psCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ps",
		Short:   "List an app's processes",
		Long:    "List an app's processes: each one's state, release, node and address, and how often it restarted.",
		Example: "  skiff ps -a shop",
		Args:    args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			ps, err := c.Processes(cmd.Context(), name)
			if err != nil {
				return err
			}
			empty := fmt.Sprintf("%s has no processes. Deploy it (skiff deploy -a %s) or scale it (skiff scale -a %s web=1).", name, name, name)
			header := []string{"PROCESS", "STATE", "RELEASE", "NODE", "ADDRESS", "SINCE", "RESTARTS", "CPU", "MEMORY", "COMMAND"}
			shown, err := show(e, ps, empty, header, func(p skiff.ProcessView) []string {
				state := string(p.State)
				if p.CrashLoop {
					state += " (crash loop)"
				}
				addr := p.Addr
				if addr == "" {
					addr = "-"
				}
				cpu, mem := "-", "-"
				if u := p.Usage; u != nil {
					cpu = fmt.Sprintf("%.1fs", u.CPUSeconds)
					mem = fmt.Sprintf("%s (peak %s)", mib(u.Memory), mib(u.MemoryPeak))
					if u.MemoryLimit > 0 {
						mem = fmt.Sprintf("%s (peak %s) of %s", mib(u.Memory), mib(u.MemoryPeak), mib(u.MemoryLimit))
					}
				}
				return []string{p.Name, state, skiff.VersionLabel(p.Release), p.Node, addr, ago(p.Since), strconv.Itoa(p.Restarts), cpu, mem, p.Command}
			})
			if !shown {
				return err
			}
			for _, p := range ps {
				if p.ExitReason != "" && (p.State != skiff.StateUp || p.Restarts > 0) {
					fmt.Fprintf(e.stdout, "%s last exited: %s\n", p.Name, p.ExitReason)
				}
			}
			return nil
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	return cmd
}

// mib writes n bytes in MiB.
func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

func scaleCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scale [TYPE=N...]",
		Short: "Set how many processes of each type run",
		Long: `Set how many processes of each type run, or, without arguments, show the
app's process types and their quantities. The types are those of the app's
Procfile.`,
		Example: `  skiff scale -a shop web=2 worker=1
  skiff scale -a shop worker=0`,
		RunE: func(cmd *cobra.Command, a []string) error {
			quantity := make(map[string]int, len(a))
			for _, arg := range a {
				t, n, ok := strings.Cut(arg, "=")
				if !ok || t == "" {
					return usageError(cmd, "%q is not TYPE=N", arg)
				}
				q, err := strconv.Atoi(n)
				if err != nil || q < 0 {
					return usageError(cmd, "%q: the quantity must be a whole number from 0 up", arg)
				}
				quantity[t] = q
			}
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			var f []skiff.FormationEntry
			if len(quantity) == 0 {
				f, err = c.Formation(cmd.Context(), name)
			} else {
				f, err = c.Scale(cmd.Context(), name, quantity)
			}
			if err != nil {
				return err
			}
			if e.g.json {
				return e.printJSON(f)
			}
			if len(quantity) > 0 {
				parts := make([]string, 0, len(quantity))
				for _, t := range skiff.SortedTypes(quantity) {
					parts = append(parts, fmt.Sprintf("%s=%d", t, quantity[t]))
				}
				fmt.Fprintf(e.stdout, "Scaled %s to %s\n", name, strings.Join(parts, " "))
			}
			rows := [][]string{{"TYPE", "QUANTITY", "COMMAND"}}
			for _, x := range f {
				rows = append(rows, []string{x.Type, strconv.Itoa(x.Quantity), x.Command})
			}
			return e.table(rows)
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	return cmd
}

func restartCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restart [TYPE]",
		Short: "Restart an app's processes, one type or all",
		Long: `Restart an app's processes: new ones start, and each old one stops once its
replacement is up, so web traffic is not interrupted.`,
		Example: `  skiff restart -a shop
  skiff restart -a shop worker`,
		Args: args(0, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			typ, what := "", "all processes"
			if len(a) == 1 {
				typ, what = strings.SplitN(a[0], ".", 2)[0], a[0]+" processes"
			}
			if err := c.Restart(cmd.Context(), name, typ); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Restarting %s of %s.\n", what, name)
			return nil
		},
	}
	e.appFlag(cmd)
	return cmd
}
