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
		Use:   "scale [TYPE=N[:SIZE]...]",
		Short: "Set how many processes of each type run, and their size",
		Long: `Set how many processes of each type run, and how big each is, or, without
arguments, show the app's process types with their quantities and sizes.
The types are those of the app's Procfile.

A process of size Nx gets N times the memory, CPU weight and process count
of a 1x process (512 MiB of memory unless the server says otherwise). The
sizes are 1x (the default), 2x, 4x and 8x. Changing a type's size replaces
its processes one by one, as a restart does.`,
		Example: `  skiff scale -a shop web=2 worker=1
  skiff scale -a shop web=2:2x
  skiff scale -a shop worker=4x
  skiff scale -a shop worker=0`,
		RunE: func(cmd *cobra.Command, a []string) error {
			req := skiff.ScaleRequest{Quantity: map[string]int{}, Size: map[string]string{}}
			for _, arg := range a {
				t, v, ok := strings.Cut(arg, "=")
				if !ok || t == "" || v == "" {
					return usageError(cmd, "%q is not TYPE=N, TYPE=N:SIZE or TYPE=SIZE", arg)
				}
				n, size, _ := strings.Cut(v, ":")
				if size == "" && strings.HasSuffix(n, "x") {
					n, size = "", n
				}
				if size != "" {
					if err := skiff.ValidateSize(size); err != nil {
						return err
					}
					req.Size[t] = size
				}
				if n != "" {
					q, err := strconv.Atoi(n)
					if err != nil || q < 0 {
						return usageError(cmd, "%q: the quantity must be a whole number from 0 up", arg)
					}
					req.Quantity[t] = q
				}
			}
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			var f []skiff.FormationEntry
			if len(a) == 0 {
				f, err = c.Formation(cmd.Context(), name)
			} else {
				f, err = c.Scale(cmd.Context(), name, req)
			}
			if err != nil {
				return err
			}
			if e.g.json {
				return e.printJSON(f)
			}
			if len(a) > 0 {
				var parts []string
				for _, x := range f {
					_, q := req.Quantity[x.Type]
					_, s := req.Size[x.Type]
					if q || s {
						parts = append(parts, fmt.Sprintf("%s=%d:%s", x.Type, x.Quantity, x.Size))
					}
				}
				fmt.Fprintf(e.stdout, "Scaled %s to %s\n", name, strings.Join(parts, " "))
			}
			rows := [][]string{{"TYPE", "QUANTITY", "SIZE", "COMMAND"}}
			for _, x := range f {
				rows = append(rows, []string{x.Type, strconv.Itoa(x.Quantity), x.Size, x.Command})
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
