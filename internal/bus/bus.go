// Package bus is the bus role: an embedded NATS server with JetStream that
// carries every message and holds every piece of platform state.
//
// Unlike the other roles, the bus has Start and Shutdown rather than Run:
// it must be up before any other role starts and must stay up until the
// last of them has returned, so the server package orders it by hand.
//
// Durability: JetStream fsyncs every write before acknowledging it
// (sync_interval: always), so an acknowledged state change survives a power
// loss. Authentication: every client, in-process ones included, presents
// the bus token; with no listen address the server opens no socket at all.
package bus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/skiff-paas/skiff/internal/netx"
)

// Config configures the bus.
type Config struct {
	// Dir is where JetStream keeps its files. Required.
	Dir string
	// Name is the server's name; default "skiff".
	Name string
	// Listen is the host:port other processes connect to; empty means only
	// in-process clients.
	Listen string
	// Token is the secret every client presents. Required.
	Token string
	// TLS, when set, is required of every connection from another
	// process (in-process clients skip it), with a client certificate it
	// verifies, and of every route between the nodes of a cluster.
	TLS *tls.Config
	// Cluster, when set, makes the server a node of a cluster: JetStream
	// then keeps each stream on as many nodes as its replicas say, with
	// its own Raft groups. Needs TLS.
	Cluster *Cluster
	// Logger receives the server's own log lines at debug level and its
	// warnings and errors at their level.
	Logger *slog.Logger
}

// Cluster is a bus node's place in a cluster.
type Cluster struct {
	// Name is the cluster's; every node has the same (default "skiff").
	Name string
	// Listen is the host:port other bus nodes connect to.
	Listen string
	// Advertise, when set, is the host:port the other nodes are told to
	// reach this one at, when Listen is not it (0.0.0.0, or behind NAT).
	Advertise string
	// Peers are the host:port route addresses of other nodes; the node
	// connects to them and learns the rest from them.
	Peers []string
	// User and Password authenticate routes, on top of TLS.
	User, Password string
}

// Bus is a running embedded NATS server.
type Bus struct {
	cfg   Config
	srv   *server.Server
	fatal chan string // the server's first fatal error, such as a port in use
}

// New validates cfg and creates, but does not start, the server.
func New(cfg Config) (*Bus, error) {
	if cfg.Dir == "" || cfg.Token == "" {
		return nil, errors.New("bus: Dir and Token are required")
	}
	if cfg.Name == "" {
		cfg.Name = "skiff"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	opts := &server.Options{
		ServerName:         cfg.Name,
		JetStream:          true,
		StoreDir:           cfg.Dir,
		SyncAlways:         true,
		Authorization:      cfg.Token,
		NoSigs:             true,
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: 256 << 20,
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("bus: listen address %q: %w", cfg.Listen, err)
		}
		opts.Host = host
		if opts.Port, err = strconv.Atoi(port); err != nil {
			return nil, fmt.Errorf("bus: listen port %q: %w", port, err)
		}
		if opts.Port == 0 {
			opts.Port = server.RANDOM_PORT
		}
	}
	if cfg.TLS != nil {
		opts.TLSConfig = cfg.TLS.Clone()
		opts.TLS, opts.TLSVerify, opts.TLSTimeout = true, true, 5
	}
	if c := cfg.Cluster; c != nil {
		if err := clusterOptions(opts, cfg); err != nil {
			return nil, err
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	b := &Bus{cfg: cfg, srv: srv, fatal: make(chan string, 1)}
	srv.SetLoggerV2(slogAdapter{cfg.Logger, b.fatal}, false, false, false)
	return b, nil
}

// clusterOptions sets the options of a cluster node.
func clusterOptions(opts *server.Options, cfg Config) error {
	c := cfg.Cluster
	if cfg.TLS == nil || c.User == "" || c.Password == "" {
		return errors.New("bus: a cluster node needs TLS and route credentials")
	}
	if cfg.Name == "skiff" {
		return errors.New("bus: a cluster node needs a name of its own")
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("bus: cluster address %q: %w", c.Listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("bus: cluster port %q: %w", port, err)
	}
	name := c.Name
	if name == "" {
		name = "skiff"
	}
	opts.Cluster = server.ClusterOpts{Name: name, Host: host, Port: p, Advertise: c.Advertise,
		Username: c.User, Password: c.Password, TLSConfig: cfg.TLS.Clone(), TLSTimeout: 5}
	for _, peer := range c.Peers {
		if _, _, err := net.SplitHostPort(peer); err != nil {
			return fmt.Errorf("bus: cluster peer %q: %w", peer, err)
		}
		opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats-route", Host: peer, User: url.UserPassword(c.User, c.Password)})
	}
	return nil
}

// Dial connects a process to the bus nodes at urls (nats://host:port),
// with the bus token and, when tlsConfig is set, over TLS with its client
// certificate. It reconnects for ever, to whichever node answers.
func Dial(urls []string, token string, tlsConfig *tls.Config, name string) (*nats.Conn, error) {
	// A connection to a bus node that stops acknowledging (dead, or cut
	// off) is given up after a few seconds, and another one tried, so a
	// node whose network comes back is on the bus again at once.
	opts := []nats.Option{nats.Token(token), nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		nats.SetCustomDialer(netx.Dialer(2*time.Second, 3*time.Second))}
	if tlsConfig != nil {
		opts = append(opts, nats.Secure(tlsConfig))
	}
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("bus: connect to %s: %w", strings.Join(urls, ", "), err)
	}
	return nc, nil
}

// Start runs the server and waits until it accepts connections and
// JetStream has recovered its state.
func (b *Bus) Start(timeout time.Duration) error {
	go b.srv.Start()
	deadline := time.Now().Add(timeout)
	for !b.srv.ReadyForConnections(100 * time.Millisecond) {
		select {
		case msg := <-b.fatal:
			b.srv.Shutdown()
			return fmt.Errorf("bus: %s", msg)
		default:
		}
		if time.Now().After(deadline) {
			b.srv.Shutdown()
			return fmt.Errorf("bus: not ready after %s", timeout)
		}
	}
	return nil
}

// Connect opens an in-process client connection named name.
func (b *Bus) Connect(name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(b.srv), nats.Token(b.cfg.Token),
		nats.Name(name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("bus: connect %s: %w", name, err)
	}
	return nc, nil
}

// ClientURL is the URL other processes connect to, empty when the bus does
// not listen.
func (b *Bus) ClientURL() string {
	if b.cfg.Listen == "" {
		return ""
	}
	return b.srv.ClientURL()
}

// Peers is the number of bus nodes this one is connected with, itself
// included: 1 when not clustered.
func (b *Bus) Peers() int {
	rz, err := b.srv.Routez(nil)
	if err != nil {
		return 1
	}
	names := map[string]bool{}
	for _, r := range rz.Routes {
		if r.RemoteName != "" {
			names[r.RemoteName] = true
		}
	}
	return len(names) + 1
}

// Leads reports whether this node is the JetStream cluster's meta
// leader (always, when not clustered).
func (b *Bus) Leads() bool {
	return !b.srv.JetStreamIsClustered() || b.srv.JetStreamIsLeader()
}

// Shutdown stops the server, flushing JetStream to disk.
func (b *Bus) Shutdown() {
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
}

// slogAdapter turns the server's printf-style logger into slog records.
// Fatal messages are also handed to fatal, when there is room.
type slogAdapter struct {
	log   *slog.Logger
	fatal chan<- string
}

func (a slogAdapter) Noticef(f string, v ...any) { a.log.Debug(fmt.Sprintf(f, v...)) }
func (a slogAdapter) Warnf(f string, v ...any)   { a.log.Warn(fmt.Sprintf(f, v...)) }
func (a slogAdapter) Fatalf(f string, v ...any) {
	msg := fmt.Sprintf(f, v...)
	a.log.Error(msg)
	select {
	case a.fatal <- msg:
	default:
	}
}
func (a slogAdapter) Errorf(f string, v ...any) { a.log.Error(fmt.Sprintf(f, v...)) }
func (a slogAdapter) Debugf(f string, v ...any) {}
func (a slogAdapter) Tracef(f string, v ...any) {}
