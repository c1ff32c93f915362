package backup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/skiff-paas/skiff/internal/addons/account"
	"github.com/skiff-paas/skiff/internal/secret"
)

// CaptureRedis writes an RDB snapshot of the Redis server at url to w
// (taken with redis-cli --rdb, so the URL's user needs the SYNC and
// REPLCONF commands) and returns the keys of each database it holds
// ("db0" -> count; empty databases are left out). The snapshot is loaded
// into a scratch server to count them, which also proves that it loads.
// An error means the snapshot in w is incomplete: a full disk says so.
func (t Tools) CaptureRedis(ctx context.Context, url string, w io.Writer) (map[string]int64, error) {
	keys, err := t.captureRedis(ctx, url, w)
	if err != nil {
		return nil, fmt.Errorf("capture redis: %w", err)
	}
	return keys, nil
}

func (t Tools) captureRedis(ctx context.Context, url string, w io.Writer) (map[string]int64, error) {
	t = t.withDefaults()
	if err := t.needRedis(); err != nil {
		return nil, err
	}
	opt, err := parseRedisURL(url)
	if err != nil {
		return nil, err
	}
	a, err := t.account()
	if err != nil {
		return nil, err
	}
	root, err := t.scratchDir("", "skiff-redis-*", a)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	rdb := filepath.Join(root, "dump.rdb")
	if err := t.fetchRDB(ctx, opt, rdb); err != nil {
		return nil, err
	}
	if err := a.Chown(rdb); err != nil {
		return nil, err
	}
	s, err := t.startRedis(ctx, root, a, true)
	if err != nil {
		return nil, fmt.Errorf("the snapshot does not load: %w", err)
	}
	defer s.halt()
	keys, err := keyspace(ctx, s.url)
	if err != nil {
		return nil, err
	}
	s.halt()
	f, err := os.Open(rdb)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, rerr, werr := writeTo(w, f); werr != nil {
		return nil, werr
	} else if rerr != nil {
		return nil, rerr
	}
	return keys, nil
}

// fetchRDB writes a snapshot of the server opt names to file.
func (t Tools) fetchRDB(ctx context.Context, opt *redis.Options, file string) error {
	host, port, err := net.SplitHostPort(opt.Addr)
	if err != nil {
		return err
	}
	args := []string{"-h", host, "-p", port, "--no-auth-warning"}
	if opt.Username != "" {
		args = append(args, "--user", opt.Username)
	}
	if opt.TLSConfig != nil {
		args = append(args, "--tls")
	}
	args = append(args, "--rdb", file)
	env := []string{"LC_ALL=C"}
	if opt.Password != "" {
		env = append(env, "REDISCLI_AUTH="+opt.Password)
	}
	cmd := t.command(ctx, t.RedisCLI, args, env)
	out := &tail{}
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil && outOfSpace(out, filepath.Dir(file)):
		return noSpace(filepath.Dir(filepath.Dir(file))) // TempDir, not the scratch directory
	case err != nil:
		return runErr("redis-cli --rdb", err, out)
	}
	// redis-cli reports some failures (a refused AUTH) only in words.
	if fi, err := os.Stat(file); err != nil || fi.Size() == 0 {
		return fmt.Errorf("redis-cli --rdb wrote no snapshot: %s", out.lines(6))
	}
	return nil
}

// RestoreRedis replaces the data of the Redis server at url with the
// snapshot in file. The snapshot is loaded into a scratch server first (a
// file that does not load changes nothing); then the target is flushed
// (FLUSHALL) and every key of every database is copied to it with DUMP,
// PTTL and RESTORE ... REPLACE, keeping the time each has left to live.
// Keys whose time ran out before the restore are not copied. The target
// keeps running; a failure part way leaves it with part of the snapshot.
func (t Tools) RestoreRedis(ctx context.Context, url, file string) error {
	if err := t.restoreRedis(ctx, url, file); err != nil {
		return fmt.Errorf("restore redis: %w", err)
	}
	return nil
}

func (t Tools) restoreRedis(ctx context.Context, url, file string) error {
	t = t.withDefaults()
	if err := t.needRedis(); err != nil {
		return err
	}
	opt, err := parseRedisURL(url)
	if err != nil {
		return err
	}
	s, err := t.loadRedis(ctx, "", file, false)
	if err != nil {
		return fmt.Errorf("the snapshot does not load, the server is unchanged: %w", err)
	}
	defer s.close()
	dbs, err := keyspace(ctx, s.url)
	if err != nil {
		return err
	}
	target := redis.NewClient(clientOptions(opt, 0))
	defer target.Close()
	if err := target.FlushAll(ctx).Err(); err != nil {
		return fmt.Errorf("flush %s: %w", opt.Addr, err)
	}
	for _, name := range sortedKeys(dbs) {
		db, _ := strconv.Atoi(strings.TrimPrefix(name, "db"))
		if err := copyKeys(ctx, s.url, opt, db); err != nil {
			return fmt.Errorf("copy the keys of %s: %w", name, err)
		}
	}
	return nil
}

// copyKeys copies every key of database db of the scratch server at from
// to the server opt names.
func copyKeys(ctx context.Context, from string, opt *redis.Options, db int) error {
	fopt, err := redis.ParseURL(from)
	if err != nil {
		return err
	}
	src := redis.NewClient(clientOptions(fopt, db))
	defer src.Close()
	dst := redis.NewClient(clientOptions(opt, db))
	defer dst.Close()
	var cursor uint64
	for {
		keys, next, err := src.Scan(ctx, cursor, "", 500).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			dumps := make([]*redis.StringCmd, len(keys))
			ttls := make([]*redis.DurationCmd, len(keys))
			_, err := src.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i, k := range keys {
					dumps[i] = p.Dump(ctx, k)
					ttls[i] = p.PTTL(ctx, k)
				}
				return nil
			})
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			_, err = dst.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i, k := range keys {
					ttl := ttls[i].Val()
					if dumps[i].Err() != nil || ttl == -2 {
						continue // expired meanwhile
					}
					if ttl < 0 {
						ttl = 0 // no expiry
					}
					p.RestoreReplace(ctx, k, ttl, dumps[i].Val())
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// ScratchRedis starts a Redis server for the purpose, in a directory of
// its own under dir (TempDir when empty), listening on a free loopback
// port, with the data of the RDB file rdb (none when empty; the file is
// copied). The URL is the default user's, with a random password, to
// database 0. The server keeps no data on disk (no AOF, no saves). It
// stops when ctx ends or stop is called; stop also removes its files and
// is safe to call more than once.
//
// When the process is root the server runs as Tools.User, who must be able
// to reach dir: t.TempDir() of a test is not reachable (mode 0700), /tmp is.
func (t Tools) ScratchRedis(ctx context.Context, dir, rdb string) (url string, stop func(), err error) {
	t = t.withDefaults()
	if err := t.needRedis(); err != nil {
		return "", nil, err
	}
	s, err := t.loadRedis(ctx, dir, rdb, false)
	if err != nil {
		return "", nil, fmt.Errorf("scratch redis: %w", err)
	}
	return s.url, s.close, nil
}

// loadRedis starts a scratch server under dir loading a copy of rdb.
func (t Tools) loadRedis(ctx context.Context, dir, rdb string, replica bool) (*scratch, error) {
	a, err := t.account()
	if err != nil {
		return nil, err
	}
	root, err := t.scratchDir(dir, "skiff-redis-*", a)
	if err != nil {
		return nil, err
	}
	if rdb != "" {
		if err := copyFile(filepath.Join(root, "dump.rdb"), rdb, a); err != nil {
			os.RemoveAll(root)
			return nil, fmt.Errorf("copy %s: %w", rdb, err)
		}
	}
	s, err := t.startRedis(ctx, root, a, replica)
	if err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	return s, nil
}

// startRedis starts a scratch server in root, which loads root/dump.rdb if
// there is one. A replica keeps the keys whose time to live has run out
// (a primary drops them as it loads), so that it counts every key of the
// snapshot; its primary is a port of ours that never answers.
func (t Tools) startRedis(ctx context.Context, root string, a account.Account, replica bool) (*scratch, error) {
	var primary net.Listener
	if replica {
		// It lives as long as the server, lest another server take its
		// port and the replica sync (and flush) from that.
		var err error
		if primary, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
	}
	s, err := t.runRedis(ctx, root, a, primary)
	switch {
	case primary == nil:
	case err != nil:
		primary.Close()
	default:
		go func() { <-s.proc.exited; primary.Close() }()
	}
	return s, err
}

// runRedis starts redis-server in root, a replica of primary if not nil.
func (t Tools) runRedis(ctx context.Context, root string, a account.Account, primary net.Listener) (*scratch, error) {
	password := secret.Token(16)
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		conf := []string{
			"bind 127.0.0.1",
			"port " + strconv.Itoa(port),
			"dir " + quoteConf(root),
			"dbfilename dump.rdb",
			"appendonly no",
			`save ""`,
			"requirepass " + password,
			`logfile ""`,
			"daemonize no",
			"repl-diskless-sync-delay 0", // so that a capture from it is quick
		}
		if primary != nil {
			conf = append(conf, "replicaof 127.0.0.1 "+strconv.Itoa(primary.Addr().(*net.TCPAddr).Port))
		}
		file := filepath.Join(root, "redis.conf")
		if err := os.WriteFile(file, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
			return nil, diskFull(err, root)
		}
		if err := a.Chown(file); err != nil {
			return nil, err
		}
		out := &tail{}
		cmd := t.command(ctx, t.RedisServer, []string{file}, scratchEnv)
		runAs(cmd, root, a)
		p, err := start(cmd, out)
		if err != nil {
			return nil, err
		}
		s := &scratch{root: root, proc: p, sig: os.Interrupt,
			url: fmt.Sprintf("redis://default:%s@127.0.0.1:%d/0", password, port)}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		err = waitReady(ctx, p, "redis-server", func(ctx context.Context) error {
			// Dial first: go-redis logs the dials that fail.
			conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			conn.Close()
			c := redis.NewClient(&redis.Options{Addr: addr, Password: password,
				DisableIdentity: true, MaxRetries: -1, DialerRetries: 1})
			defer c.Close()
			err = c.Ping(ctx).Err()
			if err != nil && strings.HasPrefix(err.Error(), "LOADING") {
				return fmt.Errorf("%w: %v", errBusy, err)
			}
			return err
		})
		if err == nil {
			return s, nil
		}
		s.halt()
		if out.contains("Address already in use") && attempt < 3 {
			continue
		}
		if why := redisWarnings(out); why != "" && ctx.Err() == nil {
			return nil, fmt.Errorf("redis-server: %s", why)
		}
		return nil, err
	}
}

// redisWarnings is the last warnings of a redis-server's log (lines
// marked "#"), less those of every start.
func redisWarnings(out *tail) string {
	var warnings []string
	for _, l := range strings.Split(out.text(), "\n") {
		_, w, ok := strings.Cut(l, " # ")
		if !ok || strings.Contains(w, "oO0OoO0OoO0Oo") || strings.HasPrefix(w, "Redis version=") ||
			strings.HasPrefix(w, "WARNING") || w == "Configuration loaded" || w == "Server initialized" {
			continue
		}
		warnings = append(warnings, strings.TrimSpace(w))
	}
	if len(warnings) > 3 {
		warnings = warnings[len(warnings)-3:]
	}
	return strings.Join(warnings, "; ")
}

// keyspace is the keys of each database of the server at url, from INFO
// keyspace: "db0" -> count.
func keyspace(ctx context.Context, url string) (map[string]int64, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	c := redis.NewClient(clientOptions(opt, 0))
	defer c.Close()
	info, err := c.Info(ctx, "keyspace").Result()
	if err != nil {
		return nil, fmt.Errorf("count keys: %w", err)
	}
	keys := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		// db0:keys=3,expires=1,avg_ttl=0
		db, fields, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok || !strings.HasPrefix(db, "db") {
			continue
		}
		for _, f := range strings.Split(fields, ",") {
			if v, ok := strings.CutPrefix(f, "keys="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("count keys: bad INFO line %q", sc.Text())
				}
				keys[db] = n
			}
		}
	}
	return keys, nil
}

// parseRedisURL parses a redis:// or rediss:// URL without quoting it (and
// its password) in errors.
func parseRedisURL(url string) (*redis.Options, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, errors.New("the Redis URL is not a valid redis:// URL")
	}
	return opt, nil
}

// clientOptions are the options of a client of database db of the server
// opt names, for the few commands of a backup.
func clientOptions(opt *redis.Options, db int) *redis.Options {
	o := *opt
	o.DB = db
	o.DisableIdentity = true
	o.PoolSize = 2
	return &o
}

// quoteConf quotes s for a redis.conf line.
func quoteConf(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
