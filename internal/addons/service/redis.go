package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Defaults of a Redis service's settings.
const (
	DefaultMaxMemory = 64 << 20
	DefaultEviction  = "noeviction"
)

// Redis roles, as reported in ServiceStatus.Role.
const (
	RolePrimary = "primary"
	RoleReplica = "replica"
)

// redisEngine runs a Redis server on the volume, with redis.conf written
// there on every start. Users are in users.acl: the default user, whose
// password is the service's, is written there on every start; the other
// users (the addons role's ACL SETUSER, made to last by ACL SAVE) are
// kept as Redis saved them.
type redisEngine struct{}

func (redisEngine) stopSignal() syscall.Signal { return syscall.SIGTERM }
func (redisEngine) pidFile(dir string) string  { return filepath.Join(dir, "redis.pid") }
func (redisEngine) command() string            { return "redis-server" }

func (redisEngine) prepare(ctx context.Context, s *server, pw []byte, out *os.File) ([]string, error) {
	bin := s.h.cfg.RedisServer
	if bin == "" {
		return nil, fmt.Errorf("Redis is not installed on node %s: install it (apt-get install redis-server) or set the service host's RedisServer", s.h.cfg.Node)
	}
	svc := s.svc
	if svc.MaxMemory < 0 {
		return nil, fmt.Errorf("the service's MaxMemory is %d: it must be 0 (the default, %d bytes) or more", svc.MaxMemory, DefaultMaxMemory)
	}
	var primary string
	if svc.ReplicaOf != "" {
		if svc.ReplicaOf == s.name {
			return nil, fmt.Errorf("the service is its own primary (ReplicaOf %s): clear ReplicaOf or name another service", svc.ReplicaOf)
		}
		st, _, err := s.h.st.ServiceStat.Get(ctx, svc.ReplicaOf)
		switch {
		case errors.Is(err, skiff.ErrNotFound) || err == nil && st.Addr == "":
			return nil, &waitError{fmt.Sprintf("waiting for the primary %s to report its address", svc.ReplicaOf)}
		case err != nil:
			return nil, fmt.Errorf("look up the primary %s: %w", svc.ReplicaOf, err)
		}
		primary = st.Addr
	}

	acl := filepath.Join(s.dir, "users.acl")
	have, err := os.ReadFile(acl)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read the users: %w", err)
	}
	if err := writeFile(acl, withDefaultUser(have, pw), 0o600, s.h.acct.Chown); err != nil {
		return nil, err
	}
	conf, err := redisConf(s.h.cfg.Addr, s.port, s.dir, svc, primary, pw)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(s.dir, "redis.conf")
	if err := writeFile(path, []byte(conf), 0o600, s.h.acct.Chown); err != nil {
		return nil, err
	}
	return []string{bin, path}, nil
}

// redisConf is the server's configuration. A replica authenticates to
// its primary with its own password: a replica is given its primary's.
func redisConf(addr string, port int, dir string, svc skiff.Service, primary string, pw []byte) (string, error) {
	var b strings.Builder
	set := func(k string, v ...string) { fmt.Fprintf(&b, "%s %s\n", k, strings.Join(v, " ")) }
	b.WriteString("# Written by Skiff's service host on every start of the server: edits are lost.\n")
	set("bind", redisQuote(addr))
	set("port", strconv.Itoa(port))
	set("protected-mode", "yes")
	set("daemonize", "no")
	set("logfile", `""`)
	set("pidfile", redisQuote(filepath.Join(dir, "redis.pid")))
	set("dir", redisQuote(dir))
	set("aclfile", redisQuote(filepath.Join(dir, "users.acl")))
	// Backups and replicas take their snapshot at once rather than after
	// Redis's default 5 s wait for more replicas to join.
	set("repl-diskless-sync-delay", "0")
	if svc.NoPersistence {
		set("appendonly", "no")
		set("save", `""`)
	} else {
		set("appendonly", "yes")
		set("appendfsync", "everysec")
	}
	maxMemory := svc.MaxMemory
	if maxMemory == 0 {
		maxMemory = DefaultMaxMemory
	}
	set("maxmemory", strconv.FormatInt(maxMemory, 10))
	eviction := svc.Eviction
	if eviction == "" {
		eviction = DefaultEviction
	}
	set("maxmemory-policy", redisQuote(eviction))
	if primary != "" {
		host, port, err := net.SplitHostPort(primary)
		if err != nil {
			return "", fmt.Errorf("the primary %s reports a bad address %q: %w", svc.ReplicaOf, primary, err)
		}
		set("replicaof", redisQuote(host), port)
		set("masterauth", redisQuote(string(pw)))
		set("replica-read-only", "yes")
	}
	return b.String(), nil
}

// redisQuote quotes s for redis.conf.
func redisQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// withDefaultUser is an ACL file with its default user set to have the
// password pw (as a hash, never in the clear) and every right, and the
// other users as they were.
func withDefaultUser(acl, pw []byte) []byte {
	sum := sha256.Sum256(pw)
	var b strings.Builder
	b.WriteString("user default on #" + hex.EncodeToString(sum[:]) + " ~* &* +@all\n")
	for line := range strings.Lines(string(acl)) {
		f := strings.Fields(line)
		if len(f) == 0 || len(f) >= 2 && f[0] == "user" && f[1] == "default" {
			continue
		}
		b.WriteString(strings.TrimRight(line, "\r\n") + "\n")
	}
	return []byte(b.String())
}

func redisClient(addr string, port int, pw []byte) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: net.JoinHostPort(addr, strconv.Itoa(port)), Password: string(pw),
		DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
		MaxRetries: -1, DialerRetries: 1, PoolSize: 1, DisableIdentity: true,
	})
}

func (redisEngine) ready(ctx context.Context, s *server, pw []byte) (string, error) {
	// A plain dial first: the client logs each failure to dial, and a
	// starting server refuses many.
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(s.h.cfg.Addr, strconv.Itoa(s.port)))
	if err != nil {
		return "", err
	}
	conn.Close()
	c := redisClient(s.h.cfg.Addr, s.port, pw)
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		if msg := err.Error(); strings.HasPrefix(msg, "WRONGPASS") || strings.HasPrefix(msg, "NOAUTH") {
			return "", refused("Redis refuses the default user's password (%v): users.acl was changed outside the platform; restart the service to have it rewritten", err)
		}
		return "", err
	}
	return redisRole(ctx, c)
}

// promote makes a replica a primary: REPLICAOF NO ONE.
func (redisEngine) promote(ctx context.Context, s *server, pw []byte) (string, error) {
	c := redisClient(s.h.cfg.Addr, s.port, pw)
	defer c.Close()
	if err := c.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		return "", fmt.Errorf("REPLICAOF NO ONE: %w", err)
	}
	return redisRole(ctx, c)
}

// redisRole is the server's replication role.
func redisRole(ctx context.Context, c *redis.Client) (string, error) {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return "", fmt.Errorf("INFO replication: %w", err)
	}
	for line := range strings.Lines(info) {
		switch strings.TrimSpace(line) {
		case "role:master":
			return RolePrimary, nil
		case "role:slave":
			return RoleReplica, nil
		}
	}
	return "", errors.New("INFO replication says no role")
}
