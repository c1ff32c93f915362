package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/server"
)

func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/skiff"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "skiff")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "share", "skiff")
}

func serverCommand() *cobra.Command {
	var cfg server.Config
	var roles, logLevel string
	var parseLogFlags func() error
	var prices func() error // sets cfg.Prices from --prices and --price-*
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Skiff platform on this machine",
		Long: `Run the Skiff platform: by default every role (bus, api, builder, scheduler,
agent, router) in this one process, with an embedded bus whose state lives in
the data directory. On first start it creates an admin API token in
DATA/admin.token and prints how to log in.

SIGTERM or Ctrl-C stops it cleanly: the app processes are stopped, and on the
next start every app comes back as it was.`,
		Example: `  skiff server
  skiff server --data /var/lib/skiff --domain apps.example.com --router-addr :80`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			if err := parseLogFlags(); err != nil {
				return err
			}
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			cfg.Out = cmd.OutOrStdout()
			if roles != "" {
				cfg.Roles = strings.Split(roles, ",")
			}
			if err := prices(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			err := server.Run(ctx, cfg)
			if err == nil {
				fmt.Fprintln(cmd.OutOrStdout(), "Skiff stopped.")
			}
			return err
		},
	}
	f := cmd.Flags()
	prices = priceFlags(f, &cfg.Prices)
	f.StringVar(&cfg.DataDir, "data", defaultDataDir(), "data directory: state, images, keys")
	f.StringVar(&cfg.APIAddr, "api-addr", "127.0.0.1:7070", "address of the HTTP API")
	f.StringVar(&cfg.RouterAddr, "router-addr", ":8080", "address the router serves apps on")
	f.StringVar(&cfg.RouterTLSAddr, "router-tls-addr", "", "address the router serves apps on over HTTPS, e.g. :443 (default: none)")
	f.StringVar(&cfg.ACMEDirectory, "acme-directory", "", "ACME directory to get certificates from for custom domains, e.g. https://acme-v02.api.letsencrypt.org/directory (default: none)")
	f.StringVar(&cfg.ACMEEmail, "acme-email", "", "contact address of the ACME account")
	f.StringVar(&cfg.SSHAddr, "ssh-addr", ":2222", "address of the SSH endpoint for git push and clone")
	f.StringVar(&cfg.BusAddr, "bus-addr", "", "address the bus listens on for other nodes (default: none, in-process only)")
	f.StringVar(&cfg.ClusterAddr, "cluster-addr", "", "address this bus node listens on for the other bus nodes of its cluster; starts a cluster unless --join-token joins one")
	f.StringVar(&cfg.JoinToken, "join-token", os.Getenv("SKIFF_JOIN_TOKEN"), "join the cluster of this token (from skiff server join-token; default $SKIFF_JOIN_TOKEN)")
	f.StringSliceVar(&cfg.Join, "join", nil, "nats://HOST:PORT of bus nodes to connect to, for a node without the bus role (default: those of the join token)")
	f.StringVar(&cfg.Domain, "domain", "localhost", "apps answer at NAME.DOMAIN")
	f.StringVar(&cfg.NodeName, "node-name", "", "name of this node (default: the hostname)")
	f.StringVar(&roles, "roles", "", "comma-separated roles to run (default: all)")
	f.StringVar(&cfg.AgentAddr, "agent-addr", "", "address routers on other nodes reach this node's app instances at (default: the host of --cluster-addr or --bus-addr if they name one, else 127.0.0.1)")
	f.StringToStringVar(&cfg.Labels, "labels", nil, "labels of this node that apps may be placed by, e.g. region=eu,zone=eu-1a")
	f.Int64Var(&cfg.NodeMemory, "node-memory", 0, "memory this node's instances may reserve, in bytes (default: the machine's less 1 GiB)")
	f.DurationVar(&cfg.DeadAfter, "node-dead-after", 6*time.Second, "how long a node may miss heartbeats before it is declared dead and its instances are started elsewhere")
	f.DurationVar(&cfg.BootTimeout, "boot-timeout", 60*time.Second, "how long a release's processes may take to come up")
	f.DurationVar(&cfg.StopGrace, "stop-grace", 30*time.Second, "how long a process has to exit after SIGTERM before SIGKILL")
	f.DurationVar(&cfg.DrainDelay, "drain-delay", 2*time.Second, "how long a retired web process keeps serving requests under way")
	f.DurationVar(&cfg.BuildTimeout, "build-timeout", 15*time.Minute, "how long a build may take")
	f.Int64Var(&cfg.MaxUpload, "max-upload", 512<<20, "largest deploy upload accepted, in bytes")
	f.Int64Var(&cfg.MaxImage, "max-image", 1<<30, "largest app image a build may make, in bytes")
	f.StringVar(&cfg.Driver, "driver", "", "how the agent runs app processes, and builds their commands: isolated (default as root) or exec")
	f.StringVar(&cfg.Cgroup, "cgroup", "", "cgroup version of the isolated driver and builds: v1 or v2 (default: the host's)")
	f.Int64Var(&cfg.InstanceMemory, "instance-memory", 512<<20, "memory limit of an app instance, in bytes")
	f.Int64Var(&cfg.BuildMemory, "build-memory", 2<<30, "memory limit of each command of a build, in bytes (isolated builds)")
	f.StringVar(&cfg.PostgresURL, "postgres-url", "", "admin URL of an existing PostgreSQL server for shared-plan databases, e.g. postgres://admin:PASSWORD@db.internal:5432/postgres (default: the platform runs its own)")
	f.StringVar(&cfg.AddonsDir, "addons-dir", "", "where the addons role keeps backups while it captures, checks and restores them (default: DATA/addons)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.DurationVar(&cfg.CronMinute, "cron-minute", time.Minute, "how long a minute of scheduled jobs' schedules lasts (for tests)")
	_ = f.MarkHidden("cron-minute")
	f.DurationVar(&cfg.AddonsTick, "addons-tick", 15*time.Second, "how often the addons leader looks for due backups (for tests)")
	_ = f.MarkHidden("addons-tick")
	f.StringVar(&cfg.SMTPAddr, "smtp-addr", "", "SMTP relay alerts are emailed through, host:port, e.g. smtp.example.com:587 (default: no email)")
	f.StringVar(&cfg.SMTPFrom, "smtp-from", "", "address alerts' emails come from, e.g. skiff@example.com")
	f.StringVar(&cfg.SMTPUser, "smtp-user", "", "user to log in to the SMTP relay as (with --smtp-password-file)")
	f.StringVar(&cfg.SMTPPasswordFile, "smtp-password-file", "", "file holding the SMTP relay's password")
	f.DurationVar(&cfg.WebhookBackoff, "webhook-backoff", 15*time.Second, "wait before a failed webhook delivery's second try; each next wait is 3 times longer (for tests)")
	_ = f.MarkHidden("webhook-backoff")
	f.DurationVar(&cfg.AlertTick, "alert-tick", 2*time.Second, "how often alert rules are evaluated (for tests)")
	_ = f.MarkHidden("alert-tick")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "address to serve this process's Prometheus metrics on at /metrics, without a token, e.g. 127.0.0.1:9100 (default: none; the API serves them to admins)")
	f.DurationVar(&cfg.MetricsGrace, "metrics-grace", 12*time.Second, "how long after a 10 s step its samples may still come (for tests)")
	_ = f.MarkHidden("metrics-grace")
	parseLogFlags = logFlags(f, &cfg.Logs)
	cmd.AddCommand(joinTokenCommand())
	return cmd
}

func joinTokenCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "join-token",
		Short: "Print the token other nodes join this node's cluster with",
		Long: `Print the token a node joins this node's cluster with: skiff server
--join-token TOKEN on the new node. It holds the cluster's secrets and the
platform's keys: hand it over as you would a root password.

This node must be a bus node of a cluster: started with --cluster-addr and
--bus-addr.`,
		Example: `  skiff server join-token --data /var/lib/skiff`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := server.JoinToken(dataDir)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), t)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", defaultDataDir(), "data directory of this node")
	return cmd
}
