package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiff-paas/skiff/internal/addons/account"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// DefaultUser is the system user the servers run as unless Config.User
// says otherwise.
const DefaultUser = account.DefaultName

// Config configures a service host.
type Config struct {
	// Node is this node's name. Required.
	Node string
	// Addr is the host the servers listen on and clients dial: the node's
	// agent address, e.g. 127.0.0.1. Required.
	Addr string
	// Dir holds the volumes, one directory per service (Dir/NAME).
	// Required. The service user must be able to traverse to it.
	Dir string
	// PostgresBin is the directory of postgres and initdb (default: the
	// newest /usr/lib/postgresql/*/bin). Without one, PostgreSQL services
	// fail with an error that says so.
	PostgresBin string
	// RedisServer is the redis-server binary (default: redis-server on
	// the PATH). Without one, Redis services fail with an error that says
	// so.
	RedisServer string
	// User is the system user the servers run as (default DefaultUser),
	// created as a system user without a home or shell if missing. It
	// must not be root: PostgreSQL refuses to run as root. A host that
	// does not run as root runs the servers as its own user and ignores
	// User.
	User string
	// PortMin and PortMax bound the ports given to services (default
	// 15000-19999: below the agent's instance ports and the kernel's
	// ephemeral ports).
	PortMin, PortMax int
	// StartTimeout is how long a started server may take to answer before
	// it is reported failed (default 1 min). It keeps running, and is
	// reported up once it answers.
	StartTimeout time.Duration
	// StopTimeout is how long a server has to stop once asked before it
	// is killed (default 1 min).
	StopTimeout time.Duration
	Logger      *slog.Logger
}

// Host is the service host of one node.
type Host struct {
	cfg   Config
	st    *store.Store
	log   *slog.Logger
	acct  account.Account // the servers' user
	ports *portClaims
	ready atomic.Bool
}

// New validates cfg, applies its defaults, makes sure the service user
// exists and the volume directory is there and reachable by that user,
// and returns a host.
func New(cfg Config, st *store.Store) (*Host, error) {
	if cfg.Node == "" || cfg.Addr == "" || cfg.Dir == "" || st == nil {
		return nil, errors.New("service host: Node, Addr, Dir and a store are required")
	}
	if strings.ContainsAny(cfg.Node, ".*> \t") {
		return nil, fmt.Errorf("service host: node name %q may not hold dots, wildcards or spaces", cfg.Node)
	}
	if cfg.PostgresBin == "" {
		cfg.PostgresBin = account.PostgresBin("postgres")
	}
	if cfg.RedisServer == "" {
		cfg.RedisServer, _ = exec.LookPath("redis-server")
	}
	if cfg.User == "" {
		cfg.User = DefaultUser
	}
	if cfg.PortMin == 0 && cfg.PortMax == 0 {
		cfg.PortMin, cfg.PortMax = 15000, 19999
	}
	if cfg.PortMin <= 0 || cfg.PortMax < cfg.PortMin || cfg.PortMax > 65535 {
		return nil, fmt.Errorf("service host: bad port range %d-%d", cfg.PortMin, cfg.PortMax)
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = time.Minute
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("service host: %w", err)
	}
	cfg.Dir = dir

	h := &Host{cfg: cfg, st: st, log: cfg.Logger.With("role", "services", "node", cfg.Node),
		ports: &portClaims{min: cfg.PortMin, max: cfg.PortMax, claimed: map[int]string{}}}
	if h.acct, err = account.Ensure(cfg.User); err != nil {
		return nil, fmt.Errorf("service host: the service user (User): %w", err)
	}
	// The volumes are private to the service user; Dir itself only needs
	// to let it through.
	if err := os.MkdirAll(cfg.Dir, 0o711); err != nil {
		return nil, fmt.Errorf("service host: make the volume directory: %w", err)
	}
	if h.acct.Cred != nil {
		if err := os.Chmod(cfg.Dir, 0o711); err != nil {
			return nil, fmt.Errorf("service host: %w", err)
		}
	}
	if err := h.acct.Reachable(cfg.Dir); err != nil {
		return nil, fmt.Errorf("service host: the service user %s cannot reach the volumes: %w, or choose another Dir", h.acct.Name, err)
	}
	return h, nil
}

// Ready reports whether the host has taken up the node's services.
func (h *Host) Ready() bool { return h.ready.Load() }

// Run runs the node's services until ctx ends, then stops every server
// cleanly and returns. Their volumes and statuses stay: the node is
// restarting, not losing its data.
func (h *Host) Run(ctx context.Context) error {
	h.loadPorts()
	sctx, stopAll := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopAll()

	prefix := h.cfg.Node + "."
	changes, err := h.st.Services.Watch(sctx, prefix+">")
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("service host: %w", err)
	}
	running := map[string]*server{} // by service name; owned by this loop
	exited := make(chan *server)
	launch := func(name string, svc *skiff.Service) {
		s := h.newServer(name, svc)
		running[name] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.supervise(sctx)
			select {
			case exited <- s:
			case <-sctx.Done():
			}
		}()
	}
	for {
		select {
		case c, ok := <-changes:
			if !ok {
				if ctx.Err() != nil {
					return nil // servers stop with sctx
				}
				return errors.New("service host: the watch of the node's services ended: the bus connection closed; restart the node's skiff")
			}
			name := strings.TrimPrefix(c.Key, prefix)
			switch {
			case c.Synced:
				h.ready.Store(true)
				h.log.Info("services loaded", "services", len(running))
				names := map[string]bool{}
				for n := range running {
					names[n] = true
				}
				wg.Add(1)
				go func() { defer wg.Done(); h.clearStaleStatuses(sctx, names) }()
			case !validName.MatchString(name):
				h.log.Warn("ignoring a service with a name that cannot name a volume", "key", c.Key)
			case c.Deleted:
				if s := running[name]; s != nil {
					s.pending = nil
					if !s.retired {
						s.retired = true
						close(s.retire)
					}
				} else if _, err := os.Stat(filepath.Join(h.cfg.Dir, name)); err == nil {
					// Deleted while the host was away: clean up what is left.
					launch(name, nil)
				}
			default:
				if c.Value.Name != name {
					h.log.Warn("service record's name differs from its key: using the key's", "key", c.Key, "name", c.Value.Name)
					c.Value.Name = name
				}
				if s := running[name]; s != nil {
					if s.retired {
						v := c.Value
						s.pending = &v // started again once the old one is gone
					} else {
						s.push(c.Value)
					}
					continue
				}
				v := c.Value
				launch(name, &v)
			}
		case s := <-exited:
			delete(running, s.name)
			if s.pending != nil && sctx.Err() == nil {
				launch(s.name, s.pending)
			}
		}
	}
}

// validName is what a service name must look like to name its volume.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

// clearStaleStatuses deletes the statuses of this node's services that no
// longer exist (deleted while the host was away, and the deletion long
// forgotten by the bucket).
func (h *Host) clearStaleStatuses(ctx context.Context, running map[string]bool) {
	stats, err := h.st.ServiceStat.List(ctx, "")
	if err != nil {
		if ctx.Err() == nil {
			h.log.Warn("list service statuses", "err", err)
		}
		return
	}
	for _, c := range stats {
		if c.Value.Node != h.cfg.Node || running[c.Key] {
			continue
		}
		if _, _, err := h.st.Services.Get(ctx, skiff.ServiceKey(h.cfg.Node, c.Key)); !errors.Is(err, skiff.ErrNotFound) {
			continue // created since the watch began, or unknown
		}
		if err := h.st.ServiceStat.DeleteAt(ctx, c.Key, c.Revision); err != nil && !errors.Is(err, skiff.ErrConflict) {
			h.log.Warn("delete a stale service status", "service", c.Key, "err", err)
		}
	}
}

// portClaims are the ports the node's volumes hold, so that two services
// never get the same one, even while one of them is down. mu guards
// claimed.
type portClaims struct {
	min, max int
	mu       sync.Mutex
	claimed  map[int]string // port -> service
}

// loadPorts claims the ports recorded in the volumes.
func (h *Host) loadPorts() {
	files, _ := filepath.Glob(filepath.Join(h.cfg.Dir, "*", portFile))
	sort.Strings(files)
	h.ports.mu.Lock()
	defer h.ports.mu.Unlock()
	for _, f := range files {
		if p, err := readPort(f); err == nil {
			h.ports.claimed[p] = filepath.Base(filepath.Dir(f))
		}
	}
}

// claim records that name holds port (read from its volume).
func (pc *portClaims) claim(name string, port int) error {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if other, ok := pc.claimed[port]; ok && other != name {
		return fmt.Errorf("port %d of %s is also recorded for %s: remove one of the two services", port, name, other)
	}
	pc.claimed[port] = name
	return nil
}

// pick chooses a port free on addr that no volume holds, and claims it
// for name.
func (pc *portClaims) pick(name, addr string) (int, error) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	n := pc.max - pc.min + 1
	start := rand.IntN(n)
	for i := range n {
		p := pc.min + (start+i)%n
		if _, taken := pc.claimed[p]; taken {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		pc.claimed[p] = name
		return p, nil
	}
	return 0, fmt.Errorf("no free port in %d-%d on %s: widen the service host's port range", pc.min, pc.max, addr)
}

// release forgets the port of a removed service.
func (pc *portClaims) release(name string) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for p, n := range pc.claimed {
		if n == name {
			delete(pc.claimed, p)
		}
	}
}
