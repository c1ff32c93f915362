package cli

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func nodesCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "List the platform's nodes (admins)",
		Long: `List the machines of the platform: each node's state, roles, labels,
capacity and load, how many instances it runs, and when its last heartbeat
came. A node is up, suspect (silent for a few seconds: it takes no new
instances), dead (silent past the grace period: its instances were started
elsewhere), draining or drained. The node whose scheduler leads is marked
with a *.`,
		Example: "  skiff nodes\n  skiff nodes --json",
		Args:    args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			ns, err := c.Nodes(cmd.Context())
			if err != nil {
				return err
			}
			header := []string{"NAME", "STATE", "ROLES", "ADDRESS", "LABELS", "CPUS", "LOAD", "MEMORY RESERVED", "INSTANCES", "HEARTBEAT"}
			_, err = show(e, ns, "No node has sent a heartbeat yet.", header, func(n skiff.NodeInfo) []string {
				name := n.Name
				if n.Leader {
					name += " *"
				}
				mem := mib(n.Reserved)
				if n.Memory > 0 {
					mem += " of " + mib(n.Memory)
				}
				return []string{name, n.Status, strings.Join(n.Roles, ","), n.Addr, labels(n.Labels), strconv.Itoa(n.CPUs),
					fmt.Sprintf("%.2f", n.Load), mem, strconv.Itoa(n.Assigned), ago(n.Heartbeat)}
			})
			return err
		},
	}
	e.jsonFlag(cmd)

	var wait time.Duration
	drain := &cobra.Command{
		Use:   "drain NAME",
		Short: "Move a node's instances to other nodes",
		Long: `Move every instance of a node to other nodes, one new instance up before
its old one stops, so that no request fails; the node takes no new
instances. Once it is drained, stop its skiff server and remove it with
skiff nodes rm, or let it take instances again with skiff nodes undrain.`,
		Example: "  skiff nodes drain n4 --wait 5m",
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			if _, err := c.DrainNode(cmd.Context(), a[0], true); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Draining %s: its instances move to other nodes.\n", a[0])
			if wait <= 0 {
				return nil
			}
			deadline := time.Now().Add(wait)
			for {
				ns, err := c.Nodes(cmd.Context())
				if err != nil {
					return err
				}
				left := -1
				for _, n := range ns {
					if n.Name == a[0] {
						left = n.Assigned
					}
				}
				if left <= 0 {
					fmt.Fprintf(e.stdout, "%s is drained: stop its skiff server, then skiff nodes rm %s.\n", a[0], a[0])
					return nil
				}
				if time.Now().After(deadline) {
					return skiff.Errorf(skiff.KindUnavailable, "skiff nodes shows where it stands; other nodes may lack the memory free",
						"%s still has %d instance%s after %s", a[0], left, plural(left), wait)
				}
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(500 * time.Millisecond):
				}
			}
		},
	}
	drain.Flags().DurationVar(&wait, "wait", 0, "wait until the node is drained, at most this long")
	undrain := &cobra.Command{
		Use:     "undrain NAME",
		Short:   "Let a drained node take instances again",
		Example: "  skiff nodes undrain n4",
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			if _, err := c.DrainNode(cmd.Context(), a[0], false); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s takes instances again.\n", a[0])
			return nil
		},
	}
	rm := &cobra.Command{
		Use:     "rm NAME",
		Short:   "Forget a node that no longer runs (dead, or stopped after a drain)",
		Example: "  skiff nodes rm n4",
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			if err := c.RemoveNode(cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Removed node %s.\n", a[0])
			return nil
		},
	}
	cmd.AddCommand(drain, undrain, rm)
	return cmd
}

func placementCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "placement [LABEL=VALUE...]",
		Short: "Show or set the node labels an app's instances run on",
		Long: `Pin an app's instances to nodes with labels (nodes get labels with
skiff server --labels region=eu,zone=eu-1): with arguments, the app's
instances run only on nodes with every one of them, and those running
elsewhere move (each new one up before its old one stops). Without
arguments, show them; "skiff placement -a APP --clear" removes them.`,
		Example: "  skiff placement -a shop region=eu\n  skiff placement -a shop --clear",
		Args:    args(0, -1),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			clear, _ := cmd.Flags().GetBool("clear")
			var m map[string]string
			switch {
			case clear && len(a) > 0:
				return usageError(cmd, "--clear takes no labels")
			case clear || len(a) > 0:
				want := map[string]string{}
				for _, arg := range a {
					k, v, ok := strings.Cut(arg, "=")
					if !ok {
						return usageError(cmd, "%q is not LABEL=VALUE", arg)
					}
					want[k] = v
				}
				m, err = c.SetPlacement(cmd.Context(), name, want)
			default:
				m, err = c.Placement(cmd.Context(), name)
			}
			if err != nil {
				return err
			}
			if e.g.json {
				return e.printJSON(m)
			}
			if len(m) == 0 {
				fmt.Fprintf(e.stdout, "%s may run on any node.\n", name)
				return nil
			}
			fmt.Fprintf(e.stdout, "%s runs on nodes labelled %s.\n", name, labels(m))
			return nil
		},
	}
	cmd.Flags().Bool("clear", false, "let the app run on any node")
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	return cmd
}

// labels formats labels as k=v,k=v in key order.
func labels(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return strings.Join(out, ",")
}
