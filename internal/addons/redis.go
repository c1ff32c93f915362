package addons

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// redisAdmin opens a client to a Redis server as its default user.
func (m *Manager) redisAdmin(svc skiff.Service, addr string) (*redis.Client, error) {
	u, err := m.superuserURL(svc, addr)
	if err != nil {
		return nil, err
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		return nil, err
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 5*time.Second, 10*time.Second, 10*time.Second
	opt.MaxRetries = 2
	return redis.NewClient(opt), nil
}

// redisUser sets the app's ACL user on a server: every command but the
// administrative ones, on every key and channel, with password pw only.
// The ACL file is saved, so the user outlives restarts.
func (m *Manager) redisUser(ctx context.Context, svc skiff.Service, addr, user, pw string) error {
	c, err := m.redisAdmin(svc, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Do(ctx, "ACL", "SETUSER", user, "reset", "on", ">"+pw, "~*", "&*", "+@all", "-@admin").Err(); err != nil {
		return fmt.Errorf("set redis user %s on %s: %w", user, svc.Name, err)
	}
	if err := c.Do(ctx, "ACL", "SAVE").Err(); err != nil {
		return fmt.Errorf("save the redis users of %s: %w", svc.Name, err)
	}
	return nil
}

// redisUsage measures a Redis server: memory used, commands processed,
// clients connected.
func (m *Manager) redisUsage(ctx context.Context, svc skiff.Service, addr string) (skiff.AddonUsage, error) {
	u := skiff.AddonUsage{Time: time.Now().UTC()}
	c, err := m.redisAdmin(svc, addr)
	if err != nil {
		return u, err
	}
	defer c.Close()
	info, err := c.Info(ctx, "memory", "stats", "clients").Result()
	if err != nil {
		return u, fmt.Errorf("measure redis %s: %w", svc.Name, err)
	}
	fields := redisInfo(info)
	u.Bytes, _ = strconv.ParseInt(fields["used_memory"], 10, 64)
	u.Queries, _ = strconv.ParseInt(fields["total_commands_processed"], 10, 64)
	u.Connections, _ = strconv.Atoi(fields["connected_clients"])
	return u, nil
}

// redisInfo parses the fields of an INFO reply.
func redisInfo(info string) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out
}
