package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/client"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// gitHookCommand is what the ssh role installs as the apps' repositories'
// pre-receive hook. git runs it during a push with the pushed refs on its
// standard input; whatever it prints reaches the pusher as "remote: …",
// and its failing refuses the push.
func gitHookCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:    "git-hook pre-receive",
		Short:  "Deploy a git push (run by git on the server, not by hand)",
		Hidden: true,
		Args:   args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			socket, id, app := os.Getenv("SKIFF_HOOK_SOCKET"), os.Getenv("SKIFF_PUSH"), os.Getenv("SKIFF_APP")
			if a[0] != "pre-receive" || socket == "" || id == "" || app == "" {
				return usageError(cmd, "git-hook is run by git on the Skiff server during a push, not by hand")
			}
			rev, err := pushedRevision(e.stdin, e.stdout)
			if err != nil || rev == "" {
				return err
			}
			short := rev[:min(7, len(rev))]
			archive := exec.CommandContext(cmd.Context(), "git", "archive", "--format=tar.gz", rev)
			pr, pw := io.Pipe()
			archive.Stdout = pw
			var stderr strings.Builder
			archive.Stderr = &stderr
			if err := archive.Start(); err != nil {
				return err
			}
			go func() {
				err := archive.Wait()
				if err != nil {
					err = fmt.Errorf("git archive %s: %v: %s", short, err, strings.TrimSpace(stderr.String()))
				}
				pw.CloseWithError(err)
			}()
			defer pr.Close()
			_, err = client.NewUnix(socket, id).Deploy(cmd.Context(), app, pr, "Deploy "+short, func(line string) {
				fmt.Fprintln(e.stdout, line)
			})
			return err
		},
	}
}

const zeroRev = "0000000000000000000000000000000000000000"

// pushedRevision reads the refs a push updates and returns the commit to
// deploy: the new main, else the new master. Other branches are taken
// without deploying; deleting main or master is refused.
func pushedRevision(in io.Reader, out io.Writer) (string, error) {
	var main, master string
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		newRev, ref := f[1], f[2]
		branch, isBranch := strings.CutPrefix(ref, "refs/heads/")
		switch {
		case isBranch && (branch == "main" || branch == "master"):
			if strings.Trim(newRev, "0") == "" {
				return "", skiff.Errorf(skiff.KindInvalid, "push a new commit instead; skiff rollback -a APP goes back to an earlier release",
					"deleting %s is refused: it is the branch Skiff deploys", branch)
			}
			if branch == "main" {
				main = newRev
			} else {
				master = newRev
			}
		default:
			fmt.Fprintf(out, "-----> %s is not main or master: pushed, not deployed\n", strings.TrimPrefix(ref, "refs/"))
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if main == "" {
		main = master
	}
	if main == zeroRev {
		return "", errors.New("no commit to deploy")
	}
	return main, nil
}
