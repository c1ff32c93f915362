package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func adminCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Move the platform's state to another installation (admins only)",
		Long: `Export the platform's state (apps, releases, config, formation, domains,
certificates, users' tokens and SSH keys, and every release's image) into
one file, and import it into a fresh installation, where the apps then serve
as they did: how a single server becomes a cluster. docs/admin.md says more.`,
		Args: args(0, 0),
	}
	cmd.AddCommand(adminExportCommand(e), adminImportCommand(e))
	return cmd
}

func adminExportCommand(e *env) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export [-o FILE]",
		Short: "Write the platform's state to a file",
		Long: `Write the platform's state to FILE (or to the standard output when it is not
a terminal): a tar file of every app's records and images. Run it while
nobody deploys.

The file holds config vars and certificates' private keys in the clear, so
that another installation, with a secret key of its own, can seal them again:
it is written with mode 0600 (a file the output is redirected to too); keep
it as private as the servers themselves.`,
		Example: `  skiff admin export -o skiff.tar
  skiff admin export | ssh new-host 'skiff admin import -'`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			var out io.Writer = e.stdout
			var tmp *os.File
			if output == "" || output == "-" {
				if isTerminal(e.stdout) {
					return usageError(cmd, "the export is a binary file that holds secrets: name a file with -o FILE, or redirect the output")
				}
				// A file the shell made for the output is as private as
				// one of -o.
				if f, ok := e.stdout.(*os.File); ok {
					if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
						if err := f.Chmod(0o600); err != nil {
							return fmt.Errorf("make the export file private: %w", err)
						}
					}
				}
			} else {
				// Written aside, then renamed: FILE is never half an export.
				if tmp, err = os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".*.partial"); err != nil {
					return &skiff.Error{Kind: skiff.KindInvalid, Message: "cannot write the export", Hint: "name a file in a directory you may write to", Err: err}
				}
				defer func() {
					if tmp != nil {
						tmp.Close()
						os.Remove(tmp.Name())
					}
				}()
				out = tmp
			}
			x, err := c.Export(cmd.Context())
			if err != nil {
				return err
			}
			defer x.Close()
			sum := x.Summary
			p := e.progress("Exporting", sum.ObjectBytes)
			_, err = io.Copy(out, p.reader(x))
			p.done()
			if err != nil {
				return err
			}
			where := "the standard output"
			if tmp != nil {
				if err := tmp.Sync(); err != nil {
					return err
				}
				if err := tmp.Close(); err != nil {
					return err
				}
				if err := os.Rename(tmp.Name(), output); err != nil {
					return err
				}
				tmp, where = nil, output
			}
			fmt.Fprintf(e.stderr, "Exported %s to %s.\n", counts(sum.Records, sum.Objects, sum.ObjectBytes), where)
			fmt.Fprintln(e.stderr, "The file holds config vars and private keys in the clear: keep it private, and delete it once imported.")
			for _, w := range sum.Warnings {
				fmt.Fprintf(e.stderr, "warning: %s\n", w)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "the file to write (default: the standard output, unless it is a terminal)")
	return cmd
}

func adminImportCommand(e *env) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Read a file made by skiff admin export into a fresh installation",
		Long: `Read FILE, made by skiff admin export, into this installation, which must be
fresh: it may have users, tokens and SSH keys, but no app. FILE - reads the
standard input.

Every entry of the file is checked against its checksum before any record is
written; a damaged or incomplete file changes nothing. Config vars and
private keys are sealed again with this installation's secret key. Its own
admin token keeps working, and so do the tokens of the exported
installation. The scheduler then starts each app's current release here.

With --dry-run the file is read and checked, and this installation too, but
nothing is written.`,
		Example: `  skiff admin import skiff.tar
  skiff admin import --dry-run skiff.tar`,
		Args: args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			in, size := e.stdin, int64(0)
			if a[0] == "-" && isTerminal(e.stdin) {
				return usageError(cmd, "- reads the export from the standard input, which is a terminal: pipe the file in, or name it")
			}
			if a[0] != "-" {
				f, err := os.Open(a[0])
				if err != nil {
					return &skiff.Error{Kind: skiff.KindInvalid, Message: "cannot read the export", Hint: "give the file skiff admin export wrote", Err: err}
				}
				defer f.Close()
				if st, err := f.Stat(); err == nil {
					size = st.Size()
				}
				in = f
			}
			// Before sending a file of many megabytes, ask whether it
			// could go in.
			if err := c.CheckImport(cmd.Context()); err != nil {
				return err
			}
			p := e.progress("Uploading", size)
			rep, err := c.Import(cmd.Context(), p.reader(in), dryRun)
			p.done()
			if err != nil {
				return err
			}
			if e.g.json {
				return e.printJSON(rep)
			}
			from := fmt.Sprintf("the export of %s (skiff %s)", rep.Export.CreatedAt.Local().Format(time.DateTime), rep.Export.SkiffVersion)
			what := counts(rep.Records, rep.Objects, rep.Bytes)
			if rep.DryRun {
				fmt.Fprintf(e.stdout, "%s is whole, and this installation can take it: %s.\nNothing was written.\n", capitalize(from), what)
			} else {
				fmt.Fprintf(e.stdout, "Imported %s from %s.\n", what, from)
				if len(rep.Apps) > 0 {
					fmt.Fprintf(e.stdout, "Apps: %s. Their current releases are being started; skiff ps -a APP shows their processes.\n",
						strings.Join(rep.Apps, ", "))
				}
			}
			for _, w := range rep.Warnings {
				fmt.Fprintf(e.stderr, "warning: %s\n", w)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check the file and this installation, write nothing")
	e.jsonFlag(cmd)
	return cmd
}

// countNames are how counts of records and objects read, by bucket or
// store.
var countNames = map[string][2]string{
	skiff.BucketApps: {"app", "apps"}, skiff.BucketReleases: {"release", "releases"},
	skiff.BucketConfig: {"app config", "app configs"}, skiff.BucketFormation: {"formation", "formations"},
	skiff.BucketDomains: {"domain", "domains"}, skiff.BucketCerts: {"certificate", "certificates"},
	skiff.BucketTokens: {"API token", "API tokens"}, skiff.BucketKeys: {"SSH key", "SSH keys"},
	skiff.BucketUIDs: {"user ID", "user IDs"}, skiff.BucketACME: {"ACME cache entry", "ACME cache entries"},
}

// counts says how many of each thing there are: apps, releases and images
// first.
func counts(records, objects map[string]int, bytes int64) string {
	name := func(n int, kind string) string {
		names, ok := countNames[kind]
		if !ok {
			names = [2]string{kind + " record", kind + " records"}
		}
		if n == 1 {
			return "1 " + names[0]
		}
		return fmt.Sprintf("%d %s", n, names[1])
	}
	parts := []string{name(records[skiff.BucketApps], skiff.BucketApps), name(records[skiff.BucketReleases], skiff.BucketReleases)}
	images := fmt.Sprintf("%d image", objects[skiff.ObjectSlugs])
	if objects[skiff.ObjectSlugs] != 1 {
		images += "s"
	}
	parts = append(parts, images+" ("+skiff.HumanBytes(bytes)+")")
	var rest []string
	for kind, n := range records {
		if kind != skiff.BucketApps && kind != skiff.BucketReleases && n > 0 {
			rest = append(rest, kind)
		}
	}
	sort.Strings(rest)
	for _, kind := range rest {
		parts = append(parts, name(records[kind], kind))
	}
	return strings.Join(parts, ", ")
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress shows how many bytes went through, on stderr when it is a
// terminal, at most a few times a second; otherwise it shows nothing.
type progress struct {
	w     io.Writer
	what  string
	total int64
	mu    sync.Mutex // guards n and last: a body is read by the HTTP client's goroutine
	n     int64
	last  time.Time
}

func (e *env) progress(what string, total int64) *progress {
	if !isTerminal(e.stderr) {
		return &progress{}
	}
	return &progress{w: e.stderr, what: what, total: total}
}

func (p *progress) reader(r io.Reader) io.Reader {
	if p.w == nil {
		return r
	}
	return &progressReader{r: r, p: p}
}

func (p *progress) show() {
	if p.total > 0 {
		fmt.Fprintf(p.w, "\r%s… %s of %s   ", p.what, skiff.HumanBytes(p.n), skiff.HumanBytes(p.total))
	} else {
		fmt.Fprintf(p.w, "\r%s… %s   ", p.what, skiff.HumanBytes(p.n))
	}
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w != nil && !p.last.IsZero() {
		p.show()
		fmt.Fprintln(p.w)
	}
}

type progressReader struct {
	r io.Reader
	p *progress
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	p := pr.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.last) > 200*time.Millisecond {
		p.last = now
		p.show()
	}
	return n, err
}
