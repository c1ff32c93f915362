// Package server wires the roles of `skiff server` together: it starts the
// embedded bus, opens the state, builds each role from its config and runs
// them until the context ends. It is the one package besides main that
// knows every role.
//
// Start and stop order:
//
//	bus ─► state ─► admin token ─► router, api, builder, scheduler, agent (in parallel)
//	ctx ends ─► every role returns (the agent stops its instances) ─► bus shuts down
//
// If a role fails, the others are stopped and Run returns its error.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skiff-paas/skiff/internal/addons"
	"github.com/skiff-paas/skiff/internal/addons/service"
	"github.com/skiff-paas/skiff/internal/agent"
	"github.com/skiff-paas/skiff/internal/api"
	"github.com/skiff-paas/skiff/internal/archive"
	"github.com/skiff-paas/skiff/internal/build"
	"github.com/skiff-paas/skiff/internal/cron"
	"github.com/skiff-paas/skiff/internal/deploy"
	"github.com/skiff-paas/skiff/internal/image"
	"github.com/skiff-paas/skiff/internal/isolate"
	"github.com/skiff-paas/skiff/internal/metrics"
	"github.com/skiff-paas/skiff/internal/metrics/alerts"
	"github.com/skiff-paas/skiff/internal/metrics/usage"
	"github.com/skiff-paas/skiff/internal/metrics/webhooks"
	"github.com/skiff-paas/skiff/internal/router"
	"github.com/skiff-paas/skiff/internal/scheduler"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/sshd"
	"github.com/skiff-paas/skiff/internal/store"
)

// Config is everything `skiff server` is told by its flags.
type Config struct {
	// DataDir holds the bus's files, keys, images and instance directories.
	DataDir string
	// Roles to run; empty means all of them.
	Roles      []string
	NodeName   string
	APIAddr    string
	RouterAddr string
	// RouterTLSAddr is where the router serves HTTPS; empty: nowhere.
	RouterTLSAddr string
	// ACMEDirectory, when set, is the ACME directory the router gets
	// certificates from for custom domains without one; ACMEEmail is the
	// account's contact.
	ACMEDirectory, ACMEEmail string
	SSHAddr                  string
	// BusAddr, when set, is where the bus listens for other processes.
	BusAddr string
	// ClusterAddr, when set, is where this bus node listens for the
	// other bus nodes of its cluster; at a node's first start it makes a
	// new cluster, unless JoinToken joins one.
	ClusterAddr string
	// JoinToken, from `skiff server join-token` on a node of a cluster,
	// joins this node to it.
	JoinToken string
	// Join lists nats://HOST:PORT of bus nodes a node without the bus
	// role connects to (default: those the join token names).
	Join []string
	// Domain: apps answer at NAME.Domain.
	Domain string
	// AgentAddr is the host routers reach this node's instances at.
	AgentAddr string
	// Labels are this node's labels (region=eu), for placement.
	Labels map[string]string
	// NodeMemory is what instances may reserve on this node (0: the
	// machine's memory less 1 GiB).
	NodeMemory int64
	// DeadAfter is how long a node may be silent before the scheduler
	// declares it dead (default 6 s).
	DeadAfter time.Duration

	BootTimeout  time.Duration
	StopGrace    time.Duration
	DrainDelay   time.Duration
	BuildTimeout time.Duration
	MaxUpload    int64
	MaxImage     int64
	// Driver is the agent's driver, "exec" or "isolated"; empty takes
	// isolated when the server runs as root on a host with cgroups, else
	// exec. Builds are isolated when it is. Cgroup is the version the
	// isolated driver and builds use ("v1", "v2"; empty: the host's).
	Driver, Cgroup string
	// InstanceMemory is the memory limit of an instance of the default
	// size (512 MiB when 0).
	InstanceMemory int64
	// BuildMemory is the memory limit of each command of an isolated
	// build (2 GiB when 0).
	BuildMemory int64
	// PostgresURL, when set, is the admin URL of an existing PostgreSQL
	// server for the shared plan's databases; otherwise the platform runs
	// its own shared server on an agent node.
	PostgresURL string
	// AddonsDir holds backups while the addons role captures, checks and
	// restores them (default DataDir/addons).
	AddonsDir string
	// AddonsTick is how often the addons leader looks for due work (15 s;
	// a hidden flag shortens it for tests).
	AddonsTick time.Duration
	// CronMinute is how long a minute of scheduled jobs' schedules lasts:
	// a minute, unless a test shortens it (a hidden flag).
	CronMinute time.Duration
	// MetricsGrace is how long after a 10 s step its samples may still
	// come before its points are written (12 s; a hidden flag shortens
	// it for tests). MetricsAddr, when set, is where this process serves
	// its Prometheus metrics, without a token (prometheus.go).
	MetricsGrace time.Duration
	MetricsAddr  string
	// Prices price the usage reports of the metrics role (docs/usage.md);
	// zero prices are free.
	Prices skiff.Prices
	// SMTPAddr (host:port) and SMTPFrom, when set, are the relay and
	// sender of alerts' emails; SMTPUser and the password in
	// SMTPPasswordFile log in to it.
	SMTPAddr, SMTPFrom, SMTPUser, SMTPPasswordFile string
	// WebhookBackoff is the wait before a failed webhook delivery's second
	// try (15 s; a hidden flag shortens it for tests). AlertTick is how
	// often alert rules are evaluated (2 s).
	WebhookBackoff, AlertTick time.Duration
	// Logs: see logs.go.
	Logs LogsConfig

	Logger *slog.Logger
	// Out receives the messages meant for the person who started the
	// server: where the admin token is, and how to log in.
	Out io.Writer
}

// driverName is the driver chosen, the default taken.
func driverName(name string) string {
	if name != "" {
		return name
	}
	if os.Geteuid() == 0 && isolate.CgroupVersion() != "" {
		return "isolated"
	}
	return "exec"
}

// agentDriver chooses the agent's driver.
func agentDriver(name, cgroup string) (agent.Driver, error) {
	switch name = driverName(name); name {
	case "exec":
		return agent.Exec{}, nil
	case "isolated":
		if os.Geteuid() != 0 {
			return nil, errors.New("the isolated driver needs root: run skiff server as root, or with --driver exec")
		}
		return agent.Isolated{Cgroup: cgroup}, nil
	}
	return nil, fmt.Errorf("unknown driver %q: use exec or isolated", name)
}

// AllRoles are the roles `skiff server` runs by default.
var AllRoles = []string{skiff.RoleBus, skiff.RoleAPI, skiff.RoleSSH, skiff.RoleBuilder, skiff.RoleScheduler, skiff.RoleAgent, skiff.RoleRouter, skiff.RoleAddons, skiff.RoleMetrics}

// role is what the server needs of every role.
type role interface {
	Run(ctx context.Context) error
	Ready() bool
}

func (c *Config) setDefaults() error {
	if c.DataDir == "" {
		return errors.New("server: a data directory is required (--data)")
	}
	if len(c.Roles) == 0 {
		c.Roles = AllRoles
	}
	for _, r := range c.Roles {
		if !contains(AllRoles, r) {
			return fmt.Errorf("server: unknown role %q: the roles are %s", r, strings.Join(AllRoles, ", "))
		}
	}
	for k, v := range c.Labels {
		if err := skiff.ValidateLabel(k, v); err != nil {
			return fmt.Errorf("server: --labels: %w", err)
		}
	}
	if c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return err
		}
		c.NodeName = h
	}
	if c.Domain == "" {
		c.Domain = "localhost"
	}
	if c.SSHAddr == "" {
		c.SSHAddr = ":2222"
	}
	if c.AgentAddr == "" {
		// The host this node is reached at by the other nodes, if its
		// bus addresses name one; else this machine only.
		c.AgentAddr = "127.0.0.1"
		for _, addr := range []string{c.ClusterAddr, c.BusAddr} {
			if h, _, err := net.SplitHostPort(addr); err == nil {
				if ip := net.ParseIP(h); ip != nil && !ip.IsUnspecified() {
					c.AgentAddr = h
					break
				}
			}
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	return nil
}

// privateDataDir makes the data directory traversable but not listable,
// so that builds, which run as their app's user, reach their own build and
// cache directories, and the add-ons' servers, which run as their own
// user, their volumes and scratch directories; and keeps everything else
// in it private to the server's user.
func privateDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		switch e.Name() {
		case "builds", "buildcache", "volumes", "addons":
			continue
		}
		if !e.IsDir() {
			continue
		}
		if err := os.Chmod(filepath.Join(dir, e.Name()), 0o700); err != nil {
			return err
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Run starts the server and runs it until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	log := cfg.Logger
	if err := privateDataDir(cfg.DataDir); err != nil {
		return fmt.Errorf("server: data directory: %w", err)
	}
	cluster, clustered, err := prepareCluster(cfg)
	if err != nil {
		return fmt.Errorf("server: cluster: %w", err)
	}
	busToken, err := secret.LoadOrCreateKey(filepath.Join(cfg.DataDir, "bus.key"))
	if err != nil {
		return err
	}
	key, err := secret.LoadOrCreateKey(filepath.Join(cfg.DataDir, "secret.key"))
	if err != nil {
		return err
	}
	box, err := secret.New(key)
	if err != nil {
		return err
	}

	nc, b, err := connectBus(cfg, cluster, clustered, fmt.Sprintf("%x", busToken))
	if err != nil {
		return err
	}
	if b != nil {
		defer b.Shutdown()
		defer registerCollector(b.Collector())() // prometheus.go
	}
	defer nc.Close()
	replicas := 1
	if clustered {
		replicas = clusterReplicas
	}
	st, err := openStore(ctx, b, nc, box, store.Options{Replicas: replicas, Logger: log,
		LogMaxAge: cfg.Logs.MaxAge, LogMaxBytes: cfg.Logs.MaxSize, LogAppMaxBytes: cfg.Logs.AppMaxSize})
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting for the cluster
		}
		return err
	}

	roles, err := newRoles(ctx, cfg, st)
	if err != nil {
		return err
	}
	// Again, now that the roles have made their directories.
	if err := privateDataDir(cfg.DataDir); err != nil {
		return fmt.Errorf("server: data directory: %w", err)
	}
	names := make([]string, 0, len(roles))
	for name := range roles {
		names = append(names, name)
	}
	sort.Strings(names)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(roles))
	for _, name := range names {
		wg.Add(1)
		go func(name string, r role) {
			defer wg.Done()
			if err := r.Run(ctx); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}(name, roles[name])
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		announce(ctx, cfg, roles, log)
		<-ctx.Done() // a node of the bus role alone runs no other
	}()
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

func collect(ch <-chan error) []error {
	var out []error
	for err := range ch {
		out = append(out, err)
	}
	return out
}

// newRoles constructs the roles this node runs.
// If one cannot be made, those made already release what they hold.
func newRoles(ctx context.Context, cfg Config, st *store.Store) (_ map[string]role, err error) {
	log := cfg.Logger
	has := func(r string) bool { return contains(cfg.Roles, r) }
	roles := map[string]role{}
	defer func() {
		if err != nil {
			for _, r := range roles {
				if c, ok := r.(interface{ Close() error }); ok {
					c.Close()
				}
			}
		}
	}()
	images, err := image.NewCache(filepath.Join(cfg.DataDir, "images"))
	if err != nil {
		return nil, err
	}
	if cfg.MetricsAddr != "" {
		x, err := newExporter(cfg.MetricsAddr) // prometheus.go
		if err != nil {
			return nil, err
		}
		roles["prometheus"] = x
		log.Info("serving Prometheus metrics", "addr", x.Addr())
	}
	routerPort := 0
	if has(skiff.RoleRouter) {
		rc := router.Config{Addr: cfg.RouterAddr, TLSAddr: cfg.RouterTLSAddr, Domain: cfg.Domain, AccessLog: true,
			Images: images, Node: cfg.NodeName, Logger: log}
		if cfg.ACMEDirectory != "" {
			if cfg.RouterTLSAddr == "" {
				return nil, errors.New("--acme-directory needs --router-tls-addr: certificates are proven and served on the TLS port")
			}
			rc.ACME = &router.ACME{DirectoryURL: cfg.ACMEDirectory, Email: cfg.ACMEEmail}
		}
		r, err := router.New(rc, st)
		if err != nil {
			return nil, err
		}
		roles[skiff.RoleRouter] = r
		routerPort = portOf(r.Addr())
	} else if cfg.RouterAddr != "" {
		routerPort = portOf(cfg.RouterAddr)
	}
	if has(skiff.RoleScheduler) {
		s, err := scheduler.New(scheduler.Config{Node: cfg.NodeName, BootTimeout: cfg.BootTimeout, DeadAfter: cfg.DeadAfter, Logger: log}, st)
		if err != nil {
			return nil, err
		}
		roles[skiff.RoleScheduler] = s
		c, err := cron.New(cron.Config{Node: cfg.NodeName, Minute: cfg.CronMinute, Logger: log}, st)
		if err != nil {
			return nil, err
		}
		roles["cron"] = c // part of the scheduler role, ready on its own
	}
	if has(skiff.RoleAgent) {
		driver, err := agentDriver(cfg.Driver, cfg.Cgroup)
		if err != nil {
			return nil, err
		}
		var limits isolate.Limits
		if cfg.InstanceMemory > 0 {
			limits = isolate.Limits{Memory: cfg.InstanceMemory, CPUWeight: 100, PIDs: 512}
		}
		a, err := agent.New(agent.Config{
			Node: cfg.NodeName, Addr: cfg.AgentAddr, Dir: filepath.Join(cfg.DataDir, "agent"), Images: images,
			Roles: cfg.Roles, StopGrace: cfg.StopGrace, DrainDelay: cfg.DrainDelay, Driver: driver, Limits: limits, Logger: log,
			Labels: cfg.Labels, Memory: cfg.NodeMemory, LogRate: cfg.Logs.Rate, LogBurst: cfg.Logs.Burst,
		}, st)
		if err != nil {
			return nil, err
		}
		log.Info("agent driver", "driver", a.DriverName())
		roles[skiff.RoleAgent] = a
		// The agent's node runs the add-ons' database servers placed on it.
		h, err := service.New(service.Config{Node: cfg.NodeName, Addr: cfg.AgentAddr, Dir: filepath.Join(cfg.DataDir, "volumes"),
			Logger: log.With("role", "services")}, st)
		if err != nil {
			return nil, err
		}
		roles["services"] = h
	}
	if has(skiff.RoleMetrics) {
		// The metrics role's parts, each an entry of the roles map of its
		// own: logs and drains, metrics, usage and bills, alerts.
		u, err := usage.New(usage.Config{Node: cfg.NodeName, Prices: cfg.Prices, Logger: log}, st)
		if err != nil {
			return nil, err
		}
		roles["usage"] = u
		mail, err := mailer(cfg)
		if err != nil {
			return nil, err
		}
		wh, err := webhooks.New(webhooks.Config{Backoff: cfg.WebhookBackoff, Mail: mail, Logger: log}, st)
		if err != nil {
			return nil, err
		}
		roles["webhooks"] = wh
		al, err := alerts.New(alerts.Config{Node: cfg.NodeName, Tick: cfg.AlertTick, Grace: cfg.BootTimeout, Logger: log}, st)
		if err != nil {
			return nil, err
		}
		roles["alerts"] = al
		mr, err := metrics.New(metrics.Config{Node: cfg.NodeName, Grace: cfg.MetricsGrace, Logger: log}, st)
		if err != nil {
			return nil, err
		}
		roles["metrics"] = mr
		if err := logRoles(cfg, st, roles); err != nil {
			return nil, err
		}
	}
	if has(skiff.RoleAddons) {
		dir := cfg.AddonsDir
		if dir == "" {
			dir = filepath.Join(cfg.DataDir, "addons")
		}
		m, err := addons.New(addons.Config{Node: cfg.NodeName, WorkDir: dir, PostgresURL: cfg.PostgresURL,
			Tick: cfg.AddonsTick, Logger: log}, st)
		if err != nil {
			return nil, err
		}
		roles[skiff.RoleAddons] = m
	}
	if has(skiff.RoleBuilder) {
		isolated := driverName(cfg.Driver) == "isolated"
		b, err := build.New(build.Config{Name: cfg.NodeName, WorkDir: filepath.Join(cfg.DataDir, "builds"),
			CacheDir: filepath.Join(cfg.DataDir, "buildcache"), Images: images, Timeout: cfg.BuildTimeout,
			MaxImage: cfg.MaxImage, Isolate: isolated, Cgroup: cfg.Cgroup, Memory: cfg.BuildMemory, Logger: log}, st)
		if err != nil {
			return nil, err
		}
		log.Info("build sandbox", "isolated", isolated)
		roles[skiff.RoleBuilder] = b
	}
	if !has(skiff.RoleAgent) && (has(skiff.RoleRouter) || has(skiff.RoleBuilder)) {
		// The agent prunes the node's image cache; without one, this does.
		roles["images"] = &agent.Pruner{St: st, Node: cfg.NodeName, Images: images, Log: log.With("role", "images")}
	}
	sshAddr := ""
	if has(skiff.RoleSSH) {
		d, err := deploy.New(deploy.Config{WorkDir: filepath.Join(cfg.DataDir, "uploads"), MaxUpload: cfg.MaxUpload,
			BootTimeout: cfg.BootTimeout, URL: func(app string) string { return skiff.AppURL(app, cfg.Domain, routerPort) },
			Logger: log.With("role", "ssh")}, st)
		if err != nil {
			return nil, err
		}
		s, err := sshd.New(sshd.Config{Addr: cfg.SSHAddr, Dir: filepath.Join(cfg.DataDir, "ssh"), Deployer: d, Logger: log}, st)
		if err != nil {
			return nil, err
		}
		roles[skiff.RoleSSH] = s
		sshAddr = s.Addr()
	}
	if has(skiff.RoleAPI) {
		tokenPath := filepath.Join(cfg.DataDir, "admin.token")
		_, created, err := api.BootstrapAdmin(ctx, st, tokenPath)
		if err != nil {
			return nil, err
		}
		a, err := api.New(api.Config{
			Addr: cfg.APIAddr, Domain: cfg.Domain, RouterPort: routerPort, WorkDir: filepath.Join(cfg.DataDir, "uploads"),
			MaxUpload: cfg.MaxUpload, Limits: archive.Limits{}, BootTimeout: cfg.BootTimeout, SSHAddr: sshAddr, Logger: log,
			Health: func() map[string]bool {
				out := map[string]bool{skiff.RoleBus: true}
				for name, r := range roles {
					out[name] = r.Ready()
				}
				return out
			},
		}, st)
		if err != nil {
			return nil, err
		}
		roles[skiff.RoleAPI] = a
		if created {
			fmt.Fprintf(cfg.Out, "Created the admin API token in %s (mode 0600).\n", tokenPath)
		}
		fmt.Fprintf(cfg.Out, "Log in with:\n  skiff login --api http://%s --token $(cat %s)\n", dialable(a.Addr()), tokenPath)
	}
	return roles, nil
}

// announce says once when every role is ready.
func announce(ctx context.Context, cfg Config, roles map[string]role, log *slog.Logger) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ready := true
		for _, r := range roles {
			ready = ready && r.Ready()
		}
		if ready {
			log.Info("ready", "node", cfg.NodeName, "roles", strings.Join(cfg.Roles, ","))
			if r, ok := roles[skiff.RoleRouter].(*router.Router); ok {
				fmt.Fprintf(cfg.Out, "Skiff is ready. Apps answer at http://NAME.%s:%d\n", cfg.Domain, portOf(r.Addr()))
			} else {
				fmt.Fprintln(cfg.Out, "Skiff is ready.")
			}
			return
		}
	}
}

func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// dialable turns a listen address into one a client can dial.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
