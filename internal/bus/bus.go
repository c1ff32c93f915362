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
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
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
	// Logger receives the server's own log lines at debug level and its
	// warnings and errors at their level.
	Logger *slog.Logger
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
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	b := &Bus{cfg: cfg, srv: srv, fatal: make(chan string, 1)}
	srv.SetLoggerV2(slogAdapter{cfg.Logger, b.fatal}, false, false, false)
	return b, nil
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
