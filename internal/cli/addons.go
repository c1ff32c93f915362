package cli

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/client"
	"github.com/skiff-paas/skiff/internal/skiff"
)

func addonsCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "addons",
		Short: "List an app's databases and key-value stores; create and destroy them",
		Long: `List the add-ons of an app: PostgreSQL databases and Redis servers the platform
runs for it, each with the config var that holds its URL. docs/addons.md
says more.`,
		Example: "  skiff addons -a shop\n  skiff addons create postgres -a shop",
		Args:    args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			list, err := c.Addons(cmd.Context(), name)
			if err != nil {
				return err
			}
			_, err = show(e, list, name+" has no add-ons. Create one: skiff addons create postgres -a "+name,
				[]string{"NAME", "TYPE", "PLAN", "STATE", "CONFIG VAR", "BACKUPS", "CREATED"},
				func(v skiff.AddonView) []string {
					return []string{v.Name, v.Type, v.Plan, string(v.State), v.ConfigVar, backupSchedule(v.BackupAt), ago(v.CreatedAt)}
				})
			return err
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	cmd.AddCommand(addonsCreateCommand(e), addonsInfoCommand(e), addonsDestroyCommand(e))
	return cmd
}

func addonsCreateCommand(e *env) *cobra.Command {
	var req skiff.AddonCreateRequest
	var maxMemory string
	cmd := &cobra.Command{
		Use:   "create postgres|redis -a APP",
		Short: "Create a PostgreSQL database or a Redis server for an app",
		Long: `Create an add-on and put its URL in one of the app's config vars (DATABASE_URL
for the first PostgreSQL add-on, REDIS_URL for the first Redis one, then
POSTGRES_2_URL…; --as names another), which makes a new release.

PostgreSQL plans: shared (the default: a database of its own on the
platform's shared server) and dedicated (a server of its own). Redis is
always dedicated; --max-memory bounds it (with --eviction choosing what
goes when it is full), --no-persistence turns its append-only file off,
and --ha adds a replica on another node, which takes over if the
primary's node dies.`,
		Example: `  skiff addons create postgres -a shop
  skiff addons create postgres -a shop --plan dedicated --name reports --as REPORTS_URL
  skiff addons create redis -a shop --max-memory 64mb --eviction allkeys-lru`,
		Args: args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			req.Type = a[0]
			if maxMemory != "" {
				n, err := skiff.ParseByteSize(maxMemory)
				if err != nil {
					return usageError(cmd, "--max-memory %q is not a size: give bytes or a size with a unit, such as 64mb", maxMemory)
				}
				req.MaxMemory = skiff.ByteSize(n)
			}
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			res, err := e.job("Creating a "+req.Type+" add-on for "+name, func(onLine func(string)) (skiff.StreamMessage, error) {
				return c.CreateAddon(cmd.Context(), name, req, onLine)
			})
			if err != nil {
				return err
			}
			if res.Addon == nil {
				fmt.Fprintf(e.stdout, "Created a %s add-on for %s.\n", req.Type, name)
				return nil
			}
			v := res.Addon
			fmt.Fprintf(e.stdout, "Created %s (%s, %s) for %s: its URL is in %s.\n", v.Name, v.Type, v.Plan, name, v.ConfigVar)
			if isTerminal(e.stdout) {
				fmt.Fprintf(e.stdout, "Connect to it: %s\n", connectHint(name, *v))
			}
			return nil
		},
	}
	e.appFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&req.Plan, "plan", "", "shared or dedicated (PostgreSQL; default shared), dedicated (Redis)")
	f.StringVar(&req.Name, "name", "", "the add-on's name (default: TYPE-N, e.g. postgres-1)")
	f.StringVar(&req.As, "as", "", "the config var that gets its URL (default: DATABASE_URL, REDIS_URL, then TYPE_N_URL)")
	f.BoolVar(&req.HA, "ha", false, "Redis: keep a replica on another node")
	f.StringVar(&maxMemory, "max-memory", "", "Redis: the memory limit, e.g. 64mb")
	f.StringVar(&req.Eviction, "eviction", "", "Redis: what goes when it is full: "+strings.Join(skiff.RedisEvictionPolicies, ", "))
	f.BoolVar(&req.NoPersistence, "no-persistence", false, "Redis: keep nothing on disk (a cache)")
	return cmd
}

func addonsInfoCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "info NAME -a APP",
		Short:   "Describe an add-on",
		Example: "  skiff addons info postgres-1 -a shop",
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, _, v, err := e.appAddon(cmd.Context(), a[0], "")
			if err != nil {
				return err
			}
			rows := [][]string{
				{"Type:", v.Type},
				{"Plan:", v.Plan},
				{"State:", withError(string(v.State), v.Error)},
				{"Config var:", v.ConfigVar},
				{"URL:", maskURL(v.URL)},
			}
			if v.Addr != "" {
				rows = append(rows, []string{"Address:", v.Addr})
			}
			if v.Node != "" {
				rows = append(rows, []string{"Node:", v.Node})
			}
			if v.HA || v.Replica != "" {
				rows = append(rows, []string{"HA:", "yes, replica " + orNone(v.Replica)})
			}
			if v.Type == skiff.AddonRedis {
				limit := "none"
				if v.MaxMemory > 0 {
					limit = skiff.HumanBytes(v.MaxMemory)
				}
				if v.Eviction != "" {
					limit += ", eviction " + v.Eviction
				}
				persistence := "append-only file"
				if v.NoPersistence {
					persistence = "none"
				}
				rows = append(rows, []string{"Max memory:", limit}, []string{"Persistence:", persistence})
			}
			rows = append(rows, []string{"Backups:", backupSchedule(v.BackupAt)})
			if u := v.Usage; u != nil {
				what := "Size:"
				if v.Type == skiff.AddonRedis {
					what = "Memory used:"
				}
				rows = append(rows, []string{what, skiff.HumanBytes(u.Bytes)},
					[]string{"Connections:", strconv.Itoa(u.Connections)},
					[]string{"Queries:", strconv.FormatInt(u.Queries, 10)})
			}
			rows = append(rows, []string{"Created:", v.CreatedAt.Local().Format(time.DateTime)})
			if !v.CredentialsRotatedAt.IsZero() {
				rows = append(rows, []string{"Credentials rotated:", v.CredentialsRotatedAt.Local().Format(time.DateTime)})
			}
			if shown, err := e.describe(v, v.Name+" of "+name, rows); !shown || err != nil {
				return err
			}
			if v.URL != "" && isTerminal(e.stdout) {
				fmt.Fprintf(e.stdout, "\nThe full URL: skiff config get -a %s %s\nConnect to it: %s\n", name, v.ConfigVar, connectHint(name, v))
			}
			return nil
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	return cmd
}

func addonsDestroyCommand(e *env) *cobra.Command {
	var confirm string
	cmd := &cobra.Command{
		Use:   "destroy NAME -a APP --confirm APP",
		Short: "Delete an add-on and its data",
		Long: `Delete an add-on: its database (or server) and its data go, and its config var
is unset, which makes a new release. A last backup is taken first and kept
with the app's backups. This cannot be undone, so the app's name must be
given with --confirm.`,
		Example: "  skiff addons destroy postgres-1 -a shop --confirm shop",
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, c, err := e.confirmedAppClient(confirm, "skiff addons destroy "+a[0], func(string) string {
				return fmt.Sprintf("destroying %s deletes its data for good (a last backup is taken first)", a[0])
			})
			if err != nil {
				return err
			}
			if _, err := e.job("Destroying "+a[0]+" of "+name, func(onLine func(string)) (skiff.StreamMessage, error) {
				return c.DestroyAddon(cmd.Context(), name, a[0], confirm, onLine)
			}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Destroyed %s of %s.\n", a[0], name)
			return nil
		},
	}
	e.appFlag(cmd)
	cmd.Flags().StringVar(&confirm, "confirm", "", "the app's name, to confirm")
	return cmd
}

// job runs an add-on job. On a terminal it says what it is doing and
// shows the job's progress lines as they come; otherwise it prints
// nothing, leaving the output to the caller's result line.
func (e *env) job(doing string, run func(onLine func(string)) (skiff.StreamMessage, error)) (skiff.StreamMessage, error) {
	if !isTerminal(e.stdout) {
		return run(nil)
	}
	fmt.Fprintf(e.stdout, "%s...\n", doing)
	return run(func(line string) { fmt.Fprintln(e.stdout, line) })
}

// confirmedAppClient is appClient for a command that cannot be undone,
// which --confirm (confirm) must name the app to run: warning, given the
// app, says what it does, and command is how to run it again.
func (e *env) confirmedAppClient(confirm, command string, warning func(app string) string) (string, *client.Client, error) {
	name, err := e.appName()
	if err != nil {
		return "", nil, err
	}
	if confirm != name {
		return "", nil, &skiff.Error{Kind: skiff.KindInvalid, Message: warning(name),
			Hint: "to go ahead, run: " + command + " -a " + name + " --confirm " + name}
	}
	c, err := e.client()
	return name, c, err
}

// appAddon is appClient and the app's add-on found as findAddon finds
// it.
func (e *env) appAddon(ctx context.Context, addon, typ string) (string, *client.Client, skiff.AddonView, error) {
	name, c, err := e.appClient()
	if err != nil {
		return "", nil, skiff.AddonView{}, err
	}
	v, err := findAddon(ctx, c, name, addon, typ)
	return name, c, v, err
}

// findAddon is app's add-on name, or, when name is empty, its only
// add-on of type typ (of any type when typ is empty).
func findAddon(ctx context.Context, c *client.Client, app, name, typ string) (skiff.AddonView, error) {
	if name != "" {
		v, err := c.Addon(ctx, app, name)
		if err == nil && typ != "" && v.Type != typ {
			err = skiff.Errorf(skiff.KindInvalid, "name a "+typ+" add-on: skiff addons -a "+app+" lists them",
				"%s is a %s add-on, not %s", name, v.Type, typ)
		}
		return v, err
	}
	list, err := c.Addons(ctx, app)
	if err != nil {
		return skiff.AddonView{}, err
	}
	var found []skiff.AddonView
	for _, v := range list {
		if typ == "" || v.Type == typ {
			found = append(found, v)
		}
	}
	what := "add-on"
	if typ != "" {
		what = typ + " add-on"
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		create := typ
		if create == "" {
			create = "postgres"
		}
		return skiff.AddonView{}, skiff.Errorf(skiff.KindNotFound, "create one: skiff addons create "+create+" -a "+app,
			"%s has no %s", app, what)
	}
	names := make([]string, len(found))
	for i, v := range found {
		names[i] = v.Name
	}
	sort.Strings(names)
	return skiff.AddonView{}, skiff.Errorf(skiff.KindInvalid, "name one of them: "+strings.Join(names, ", "),
		"%s has %d %ss", app, len(found), what)
}

// describe prints a record: its JSON with --json, else a heading
// "=== title" and a table of rows (label and value). It reports whether
// it printed the table, after which some commands add more.
func (e *env) describe(v any, title string, rows [][]string) (bool, error) {
	if e.g.json {
		return false, e.printJSON(v)
	}
	fmt.Fprintf(e.stdout, "=== %s\n", title)
	return true, e.table(rows)
}

// withError is a state with the error that put a record in it, if any.
func withError(state, err string) string {
	if err == "" {
		return state
	}
	return state + ": " + err
}

// backupSchedule says when an add-on's daily backup is taken.
func backupSchedule(at string) string {
	if at == "" {
		return "none scheduled"
	}
	return "daily at " + at + " UTC"
}

// maskURL hides a URL's password.
func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return orNone(raw)
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return strings.Replace(u.String(), ":xxxxx@", ":*****@", 1)
}

// connectHint is the command that opens a shell on the add-on.
func connectHint(app string, v skiff.AddonView) string {
	if v.Type == skiff.AddonRedis {
		return "skiff redis cli -a " + app + " " + v.Name
	}
	return "skiff pg psql -a " + app + " " + v.Name
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
