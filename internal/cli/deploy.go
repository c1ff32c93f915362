package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/archive"
	"github.com/skiff-paas/skiff/internal/skiff"
)

func deployCommand(e *env) *cobra.Command {
	var description string
	cmd := &cobra.Command{
		Use:   "deploy [DIR]",
		Short: "Upload a directory, build it and release it",
		Long: `Upload DIR (the current directory by default) to Skiff, build it into an image,
and release it: the new processes start, and traffic moves to them once they
answer. The build's output streams here as it happens.

The directory needs a Procfile naming its process types, such as
  web: python3 server.py
Version-control directories (.git, .hg, .svn) are left out of the upload.

The command exits 0 once the release serves, and non-zero if the build or
the release fails, in which case the previous release keeps serving.`,
		Example: `  skiff deploy -a shop
  skiff deploy ./site -a shop -m "new checkout page"`,
		Args: args(0, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			dir := "."
			if len(a) == 1 {
				dir = a[0]
			}
			name, err := e.appName()
			if err != nil {
				return err
			}
			abs, err := filepath.Abs(dir)
			if err == nil {
				var info os.FileInfo
				if info, err = os.Stat(abs); err == nil && !info.IsDir() {
					err = fmt.Errorf("not a directory")
				}
			}
			if err != nil {
				return &skiff.Error{Kind: skiff.KindInvalid, Message: "cannot deploy " + dir, Hint: "give the app's directory: skiff deploy DIR -a " + name, Err: err}
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			pr, pw := io.Pipe()
			go func() {
				_, err := archive.Write(pw, abs)
				pw.CloseWithError(err)
			}()
			defer pr.Close()
			fmt.Fprintf(e.stdout, "-----> Deploying %s to %s\n", abs, name)
			// On a terminal the upload shows its progress until the build
			// starts talking.
			p := e.progress("Uploading", 0)
			var once sync.Once
			_, err = c.Deploy(cmd.Context(), name, p.reader(pr), description, func(line string) {
				once.Do(p.done)
				fmt.Fprintln(e.stdout, line)
			})
			once.Do(p.done)
			return err
		},
	}
	e.appFlag(cmd)
	cmd.Flags().StringVarP(&description, "message", "m", "", "describe the release (default: Deploy)")
	return cmd
}
