// Package cli is Skiff's command-line interface: Heroku-shaped commands
// that talk to the platform only through its HTTP API (internal/client).
// docs/cli.md is the user's reference for it.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/client"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// Version is the version the binary reports; the build may set it with
// -ldflags "-X github.com/skiff-paas/skiff/internal/cli.Version=...".
var Version = "dev"

// Exit codes. Scripts may rely on them; docs/cli.md lists them.
const (
	ExitOK           = 0
	ExitFailed       = 1 // the operation failed, or the platform did
	ExitUsage        = 2 // bad arguments or an invalid request
	ExitNotFound     = 3
	ExitUnauthorized = 4 // not logged in, or the token is refused
	ExitConflict     = 5
)

// ExitCode maps an error to the CLI's exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	switch skiff.KindOf(err) {
	case skiff.KindInvalid, skiff.KindTooLarge:
		return ExitUsage
	case skiff.KindNotFound:
		return ExitNotFound
	case skiff.KindUnauthorized, skiff.KindForbidden:
		return ExitUnauthorized
	case skiff.KindConflict:
		return ExitConflict
	}
	return ExitFailed
}

// globals are the flags every command shares.
type globals struct {
	api   string
	token string
	app   string
	json  bool
}

// env is what a command runs with: its output streams and the resolved
// API client.
type env struct {
	g      *globals
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// NewRoot builds the command tree. Main runs it.
func NewRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "skiff",
		Short: "Skiff: deploy and run apps on your own servers",
		Long: `Skiff builds your code into an immutable image, runs it, routes HTTP to it
by hostname and keeps it running. This is its command-line interface; the
platform itself runs with "skiff server".

Log in once with the token the server printed, then deploy:

  skiff login --api http://127.0.0.1:7070 --token TOKEN
  skiff apps create hello
  skiff deploy ./hello -a hello`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       Version,
	}
	root.SetVersionTemplate("skiff {{.Version}}\n")
	pf := root.PersistentFlags()
	pf.StringVar(&g.api, "api", "", "API address (default: $SKIFF_API, then the one saved by skiff login)")
	pf.StringVar(&g.token, "token", "", "API token (default: $SKIFF_TOKEN, then the one saved by skiff login)")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError(cmd, "%v", err)
	})
	root.CompletionOptions.HiddenDefaultCmd = true

	e := &env{g: g}
	root.AddGroup(&cobra.Group{ID: "apps", Title: "Apps:"}, &cobra.Group{ID: "run", Title: "Running apps:"}, &cobra.Group{ID: "addons", Title: "Add-ons:"})
	for _, c := range []*cobra.Command{appsCommand(e), deployCommand(e), configCommand(e), domainsCommand(e), certsCommand(e), healthCheckCommand(e), routerCommand(e), placementCommand(e)} {
		c.GroupID = "apps"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{psCommand(e), scaleCommand(e), restartCommand(e), runCommand(e), cronCommand(e), maintenanceCommand(e), logsCommand(e), metricsCommand(e), drainsCommand(e), releasesCommand(e), rollbackCommand(e)} {
		c.GroupID = "run"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{addonsCommand(e), pgCommand(e), redisCommand(e), backupsCommand(e)} {
		c.GroupID = "addons"
		root.AddCommand(c)
	}
	root.AddCommand(loginCommand(e), logoutCommand(e), versionCommand(e), keysCommand(e), gitCommand(e), usersCommand(e), gitHookCommand(e), nodesCommand(e))
	root.AddCommand(adminCommand(e))
	for _, c := range []*cobra.Command{eventsCommand(e), webhooksCommand(e), alertsCommand(e)} {
		c.GroupID = "run"
		root.AddCommand(c)
	}
	root.AddCommand(usageCommand(e))
	root.PersistentPreRun = func(cmd *cobra.Command, args []string) {
		e.stdin, e.stdout, e.stderr = cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	}
	return root
}

// Main runs the command line args against root and returns the exit code,
// having printed any error as "error: …" and "hint: …" on stderr.
func Main(root *cobra.Command, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var status *ExitStatus
	if errors.As(err, &status) {
		if status.Message != "" {
			fmt.Fprintln(stderr, status.Message)
		}
		return status.Code
	}
	if strings.HasPrefix(err.Error(), "unknown command") {
		err = &skiff.Error{Kind: skiff.KindInvalid, Message: err.Error(), Hint: "skiff help lists the commands"}
	}
	printError(stderr, err)
	return ExitCode(err)
}

func printError(w io.Writer, err error) {
	var e *skiff.Error
	if errors.As(err, &e) {
		fmt.Fprintf(w, "error: %s\n", e.Error())
		if e.Hint != "" {
			fmt.Fprintf(w, "hint: %s\n", e.Hint)
		}
		return
	}
	fmt.Fprintf(w, "error: %v\n", err)
}

// usageError is an invalid-kind error whose hint points at the command's
// help.
func usageError(cmd *cobra.Command, format string, args ...any) error {
	hint := "skiff " + strings.TrimPrefix(cmd.CommandPath(), "skiff ") + " --help shows how to use it"
	if cmd.HasExample() {
		hint = "for example: " + strings.TrimSpace(strings.SplitN(cmd.Example, "\n", 2)[0])
	}
	return &skiff.Error{Kind: skiff.KindInvalid, Message: fmt.Sprintf(format, args...), Hint: hint}
}

// args checks a command's positional arguments, with a usage error.
func args(min, max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < min:
			return usageError(cmd, "%s needs %d more argument%s: %s", cmd.CommandPath(), min-len(args), plural(min-len(args)), cmd.Use)
		case max >= 0 && len(args) > max:
			return usageError(cmd, "%s takes at most %d argument%s, got %d", cmd.CommandPath(), max, plural(max), len(args))
		}
		return nil
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// client returns an API client for the resolved address and token.
func (e *env) client() (*client.Client, error) {
	api, token := e.g.api, e.g.token
	if api == "" {
		api = os.Getenv("SKIFF_API")
	}
	if token == "" {
		token = os.Getenv("SKIFF_TOKEN")
	}
	if api == "" || token == "" {
		saved, err := loadConfig()
		if err != nil {
			return nil, err
		}
		if api == "" {
			api = saved.API
		}
		if token == "" {
			token = saved.Token
		}
	}
	if api == "" || token == "" {
		return nil, &skiff.Error{Kind: skiff.KindUnauthorized, Message: "not logged in to a Skiff API",
			Hint: "skiff login --api http://HOST:7070 --token TOKEN (the server wrote the token to DATA/admin.token)"}
	}
	return client.New(api, token), nil
}

// appFlag adds -a/--app to cmd.
func (e *env) appFlag(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&e.g.app, "app", "a", "", "the app (default: $SKIFF_APP, then the git remote named skiff)")
}

// jsonFlag adds --json to cmd.
func (e *env) jsonFlag(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&e.g.json, "json", false, "print JSON instead of a table")
}

// appName resolves the app a command is about: -a, then $SKIFF_APP, then
// the git remote named skiff of the current directory's checkout.
func (e *env) appName() (string, error) {
	if e.g.app != "" {
		return e.g.app, nil
	}
	if a := os.Getenv("SKIFF_APP"); a != "" {
		return a, nil
	}
	out, err := exec.Command("git", "remote", "get-url", "skiff").Output()
	if err == nil {
		if name := appFromRemote(strings.TrimSpace(string(out))); name != "" {
			return name, nil
		}
	}
	return "", &skiff.Error{Kind: skiff.KindInvalid, Message: "which app? none was given",
		Hint: "pass -a APP, or run this inside a git checkout with a remote named skiff"}
}

// appFromRemote takes the app's name from a git remote URL such as
// ssh://git@host:2222/shop.git or git@host:shop.git.
func appFromRemote(u string) string {
	u = strings.TrimSuffix(strings.TrimSuffix(u, "/"), ".git")
	if i := strings.LastIndexAny(u, "/:"); i >= 0 {
		u = u[i+1:]
	}
	return path.Clean(u)
}

// appClient resolves the app and the API client, as most commands need.
func (e *env) appClient() (string, *client.Client, error) {
	name, err := e.appName()
	if err != nil {
		return "", nil, err
	}
	c, err := e.client()
	return name, c, err
}

// show prints a listing: its JSON with --json, else empty when there is
// nothing, else a table of header and one row per item. It reports
// whether it printed a table, after which some listings add a note.
func show[T any](e *env, items []T, empty string, header []string, row func(T) []string) (bool, error) {
	if e.g.json {
		return false, e.printJSON(items)
	}
	if len(items) == 0 {
		fmt.Fprintln(e.stdout, empty)
		return false, nil
	}
	rows := [][]string{header}
	for _, it := range items {
		rows = append(rows, row(it))
	}
	return true, e.table(rows)
}

// printJSON writes v as indented JSON.
func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns; the first row is the header.
func (e *env) table(rows [][]string) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func versionCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the CLI's version",
		Args:  args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(e.stdout, "skiff %s\n", Version)
			return nil
		},
	}
}
