package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func pgCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "pg",
		Short:   "Work with an app's PostgreSQL add-ons: psql, credentials",
		Example: "  skiff pg psql -a shop\n  skiff pg credentials rotate -a shop",
		Args:    args(0, 0),
	}
	psql := e.tunnelCommand(skiff.AddonPostgres, &cobra.Command{
		Use:   "psql -a APP [ADDON] [-- PSQL ARGS]",
		Short: "Open psql on an app's PostgreSQL database",
		Long: `Run the local psql connected to an app's PostgreSQL add-on (its only one
unless ADDON names another), through a tunnel over the API: the database
listens nowhere else. psql gets the add-on's user, database and password
(in PGPASSWORD, not on its command line); arguments after -- go to psql.
The exit status is psql's.

psql comes with PostgreSQL's client package: apt-get install
postgresql-client (Debian, Ubuntu), brew install libpq (macOS).`,
		Example: `  skiff pg psql -a shop
  skiff pg psql -a shop reports -- -c 'select count(*) from orders'
  skiff pg psql -a shop -- -f migrate.sql`,
	})
	cmd.AddCommand(psql, e.credentialsCommand(skiff.AddonPostgres, "PostgreSQL", "pg"))
	return cmd
}

// credentialsCommand is "skiff pg credentials" or "skiff redis
// credentials", for add-ons of type typ (kind in words, the command's
// parent cmd).
func (e *env) credentialsCommand(typ, kind, parent string) *cobra.Command {
	credentials := &cobra.Command{
		Use:     "credentials",
		Short:   "Manage a " + kind + " add-on's credentials",
		Example: "  skiff " + parent + " credentials rotate -a shop",
		Args:    args(0, 0),
	}
	rotate := &cobra.Command{
		Use:   "rotate -a APP [ADDON]",
		Short: "Give a " + kind + " add-on's user a new password",
		Long: `Give the add-on's user a new password, and put the new URL in the app's
config var, which makes a new release: the app's processes restart with
it. Connections already open keep working until they close; new ones need
the new password, so copies of the old URL elsewhere stop working.`,
		Example: "  skiff " + parent + " credentials rotate -a shop",
		Args:    args(0, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, c, v, err := e.appAddon(cmd.Context(), first(a), typ)
			if err != nil {
				return err
			}
			if _, err := e.job("Rotating the credentials of "+v.Name+" of "+name, func(onLine func(string)) (skiff.StreamMessage, error) {
				return c.RotateCredentials(cmd.Context(), name, v.Name, onLine)
			}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Rotated the credentials of %s: %s holds the new URL.\n", v.Name, v.ConfigVar)
			return nil
		},
	}
	e.appFlag(rotate)
	credentials.AddCommand(rotate)
	return credentials
}

func redisCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "redis",
		Short:   "Work with an app's Redis add-ons: redis-cli, credentials",
		Example: "  skiff redis cli -a shop\n  skiff redis credentials rotate -a shop",
		Args:    args(0, 0),
	}
	cli := e.tunnelCommand(skiff.AddonRedis, &cobra.Command{
		Use:   "cli -a APP [ADDON] [-- REDIS-CLI ARGS]",
		Short: "Open redis-cli on an app's Redis server",
		Long: `Run the local redis-cli connected to an app's Redis add-on (its only one unless
ADDON names another), through a tunnel over the API. redis-cli gets the
add-on's user and password (in REDISCLI_AUTH, not on its command line);
arguments after -- go to redis-cli. The exit status is redis-cli's.

redis-cli comes with Redis's tools: apt-get install redis-tools (Debian,
Ubuntu), brew install redis (macOS).`,
		Example: `  skiff redis cli -a shop
  skiff redis cli -a shop -- info memory`,
	})
	cmd.AddCommand(cli, e.credentialsCommand(skiff.AddonRedis, "Redis", "redis"))
	return cmd
}

// tunnelCommand makes cmd run the tool of add-on type typ through a
// tunnel (tunnelTool): the add-on named before --, the tool's arguments
// after it.
func (e *env) tunnelCommand(typ string, cmd *cobra.Command) *cobra.Command {
	cmd.Args = tunnelArgs
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		addon, extra := splitDash(cmd, a)
		return e.tunnelTool(cmd.Context(), addon, typ, extra)
	}
	e.appFlag(cmd)
	return cmd
}

// tunnelArgs allows one argument, the add-on, before --.
func tunnelArgs(cmd *cobra.Command, a []string) error {
	if before, _ := splitDashArgs(cmd.ArgsLenAtDash(), a); len(before) > 1 {
		return usageError(cmd, "%s takes at most one add-on; arguments for the tool go after --", cmd.CommandPath())
	}
	return nil
}

// splitDash is the add-on named before -- (if any) and the arguments
// after it.
func splitDash(cmd *cobra.Command, a []string) (string, []string) {
	before, after := splitDashArgs(cmd.ArgsLenAtDash(), a)
	return first(before), after
}

func splitDashArgs(dash int, a []string) (before, after []string) {
	if dash < 0 {
		return a, nil
	}
	return a[:dash], a[dash:]
}

func first(a []string) string {
	if len(a) == 0 {
		return ""
	}
	return a[0]
}

// tools are the local programs that tunnelTool runs, by add-on type.
var tools = map[string]struct {
	program, install string
	target           func(rawURL string, port int) (args []string, env []string, err error)
}{
	skiff.AddonPostgres: {"psql", "apt-get install postgresql-client (or brew install libpq)", psqlTarget},
	skiff.AddonRedis:    {"redis-cli", "apt-get install redis-tools (or brew install redis)", redisTarget},
}

// tunnelTool runs the local client of an add-on's type (psql,
// redis-cli) connected to a listener on 127.0.0.1 whose every connection
// is tunnelled through the API to the add-on's server.
func (e *env) tunnelTool(ctx context.Context, addon, typ string, extra []string) error {
	tool := tools[typ]
	program, err := exec.LookPath(tool.program)
	if err != nil {
		return &skiff.Error{Kind: skiff.KindFailed, Message: tool.program + " is not installed here",
			Hint: "install it: " + tool.install}
	}
	name, c, v, err := e.appAddon(ctx, addon, typ)
	if err != nil {
		return err
	}
	if v.State != skiff.AddonReady {
		return skiff.Errorf(skiff.KindConflict, "skiff addons info "+v.Name+" -a "+name+" shows its state", "%s is %s", v.Name, v.State)
	}
	if v.URL == "" {
		return skiff.Errorf(skiff.KindConflict, "skiff config -a "+name+" shows the app's config vars",
			"%s has no URL: the config var %s is not set", v.Name, v.ConfigVar)
	}
	// Open one tunnel before starting the tool: an add-on that cannot be
	// reached is an error of skiff's, not a puzzling one of the tool's.
	probe, err := c.DialTunnel(ctx, name, v.Name)
	if err != nil {
		return err
	}
	probe.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for %s: %w", tool.program, err)
	}
	targs, tenv, err := tool.target(v.URL, l.Addr().(*net.TCPAddr).Port)
	if err != nil {
		l.Close()
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		forward(ctx, l, func(ctx context.Context) (net.Conn, error) { return c.DialTunnel(ctx, name, v.Name) }, e.stderr)
	}()
	// Closing the listener ends forward; ending ctx, its tunnels.
	defer func() {
		l.Close()
		cancel()
		wg.Wait()
	}()
	cmd := exec.CommandContext(ctx, program, append(targs, extra...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = e.stdin, e.stdout, e.stderr
	cmd.Env = append(os.Environ(), tenv...)
	// Ctrl-C is the tool's (psql cancels the query): skiff stays.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit):
		code := exit.ExitCode()
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return &ExitStatus{Code: code}
	}
	return fmt.Errorf("run %s: %w", tool.program, err)
}

// forward accepts connections on l until it is closed, joining each to
// a tunnel of its own.
func forward(ctx context.Context, l net.Listener, dial func(context.Context) (net.Conn, error), stderr io.Writer) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		local, err := l.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer local.Close()
			remote, err := dial(ctx)
			if err != nil {
				fmt.Fprintf(stderr, "skiff: cannot open a tunnel: %v\n", err)
				return
			}
			defer remote.Close()
			stop := context.AfterFunc(ctx, func() { local.Close(); remote.Close() })
			defer stop()
			done := make(chan struct{}, 2)
			go func() { io.Copy(remote, local); done <- struct{}{} }()
			go func() { io.Copy(local, remote); done <- struct{}{} }()
			<-done // either end closing ends the tunnel
			local.Close()
			remote.Close()
			<-done
		}()
	}
}

// psqlTarget is psql's arguments and environment for a PostgreSQL URL
// whose server is reached at 127.0.0.1:port: the URL with that host and
// no password, the password in PGPASSWORD.
func psqlTarget(rawURL string, port int) ([]string, []string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return nil, nil, skiff.Errorf(skiff.KindInvalid, "its config var should hold postgres://USER:PASSWORD@HOST:PORT/DB",
			"the add-on's URL is not a PostgreSQL URL")
	}
	var env []string
	if u.User != nil {
		if pw, ok := u.User.Password(); ok {
			env = append(env, "PGPASSWORD="+pw)
		}
		u.User = url.User(u.User.Username())
	}
	u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return []string{u.String()}, env, nil
}

// redisTarget is redis-cli's arguments and environment for a Redis URL
// whose server is reached at 127.0.0.1:port: the password in
// REDISCLI_AUTH, the rest as flags.
func redisTarget(rawURL string, port int) ([]string, []string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return nil, nil, skiff.Errorf(skiff.KindInvalid, "its config var should hold redis://USER:PASSWORD@HOST:PORT",
			"the add-on's URL is not a Redis URL")
	}
	args := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(port)}
	if u.Scheme == "rediss" {
		args = append(args, "--tls", "--sni", u.Hostname())
	}
	var env []string
	if u.User != nil {
		if user := u.User.Username(); user != "" {
			args = append(args, "--user", user)
		}
		if pw, ok := u.User.Password(); ok {
			env = append(env, "REDISCLI_AUTH="+pw)
		}
	}
	if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
		args = append(args, "-n", db)
	}
	return args, env, nil
}
