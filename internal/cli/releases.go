package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func releasesCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "releases",
		Short:   "List an app's releases, newest first",
		Example: "  skiff releases -a shop",
		Args:    args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			rels, err := c.Releases(cmd.Context(), name)
			if err != nil {
				return err
			}
			empty := fmt.Sprintf("%s has no releases yet. Deploy it: skiff deploy -a %s", name, name)
			header := []string{"", "VERSION", "STATUS", "DESCRIPTION", "IMAGE", "BY", "CREATED"}
			shown, err := show(e, rels, empty, header, func(r skiff.ReleaseView) []string {
				mark, status := "", string(r.Status)
				if r.Current {
					mark = "*"
				}
				if r.StatusReason != "" && r.Status == skiff.ReleaseFailed {
					status += ": " + r.StatusReason
				}
				return []string{mark, skiff.VersionLabel(r.Version), status, r.Description, shortDigest(r.Image.Digest), r.CreatedBy, ago(r.CreatedAt)}
			})
			if shown {
				fmt.Fprintln(e.stdout, "* serving")
			}
			return err
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	return cmd
}

// shortDigest shortens sha256:abcdef… to its first 12 hex digits.
func shortDigest(d string) string {
	if i := len("sha256:"); len(d) > i+12 && d[:i] == "sha256:" {
		return d[i : i+12]
	}
	return d
}

func rollbackCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollback [vN]",
		Short: "Run an earlier release's image and config as a new release",
		Long: `Make a new release from an earlier one's image and config vars, and run it.
Without a version, roll back to the release before the current one.`,
		Example: `  skiff rollback -a shop
  skiff rollback -a shop v3`,
		Args: args(0, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			version := 0
			if len(a) == 1 {
				v, err := skiff.ParseVersion(a[0])
				if err != nil {
					return err
				}
				version = v
			}
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			rel, err := c.Rollback(cmd.Context(), name, version)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s of %s: %s (restarting the processes)\n", rel.Description, name, skiff.VersionLabel(rel.Version))
			return nil
		},
	}
	e.appFlag(cmd)
	return cmd
}
