package addons

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// placeService chooses the node for a new server: a live agent node that
// is not draining, other than avoid, with the fewest servers already.
func (m *Manager) placeService(ctx context.Context, avoid string) (string, error) {
	nodes, err := m.st.Nodes.Values(ctx, "")
	if err != nil {
		return "", err
	}
	services, err := m.st.Services.Values(ctx, "")
	if err != nil {
		return "", err
	}
	load := map[string]int{}
	for _, s := range services {
		load[s.Node]++
	}
	now := time.Now()
	var ok []string
	for _, n := range nodes {
		if n.HasRole(skiff.RoleAgent) && n.Name != avoid && skiff.NodeStatus(n, 0, now) == string(skiff.NodeUp) {
			ok = append(ok, n.Name)
		}
	}
	if len(ok) == 0 {
		if avoid != "" {
			return "", skiff.Errorf(skiff.KindUnavailable, "add a node with the agent role (skiff server --roles agent --join …), or create the add-on without --ha",
				"no live agent node other than %s to run the replica on", avoid)
		}
		return "", skiff.Errorf(skiff.KindUnavailable, "start a node with the agent role; skiff nodes shows the nodes",
			"no live agent node to run the server on")
	}
	sort.Slice(ok, func(i, k int) bool {
		if load[ok[i]] != load[ok[k]] {
			return load[ok[i]] < load[ok[k]]
		}
		return ok[i] < ok[k]
	})
	return ok[0], nil
}

// service finds the service named name, wherever it runs.
func (m *Manager) service(ctx context.Context, name string) (skiff.Service, error) {
	found, err := m.st.Services.Values(ctx, "*."+name)
	if err != nil {
		return skiff.Service{}, err
	}
	if len(found) == 0 {
		return skiff.Service{}, fmt.Errorf("server %s: %w", name, skiff.ErrNotFound)
	}
	return found[0], nil
}

// waitService waits until the service's host reports it up at its
// generation, saying what it waits for.
func (m *Manager) waitService(ctx context.Context, j *job, svc skiff.Service) (skiff.ServiceStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ServiceTimeout)
	defer cancel()
	said := ""
	for {
		st, _, err := m.st.ServiceStat.Get(ctx, svc.Name)
		if err != nil && !errors.Is(err, skiff.ErrNotFound) {
			return st, err
		}
		if err == nil && st.Generation == svc.Generation {
			if st.State == skiff.ServiceUp {
				return st, nil
			}
			if msg := fmt.Sprintf("Server %s on %s is %s", svc.Name, svc.Node, st.State); msg != said {
				j.say("%s", msg)
				said = msg
			}
		}
		select {
		case <-ctx.Done():
			why := "it did not report"
			if err == nil {
				why = "it is " + string(st.State)
				if st.Error != "" {
					why += ": " + st.Error
				}
			}
			return st, skiff.Errorf(skiff.KindUnavailable, "skiff nodes shows whether the node is up; its server log is in the node's data directory",
				"server %s on node %s did not come up in %s (%s)", svc.Name, svc.Node, m.cfg.ServiceTimeout, why)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// startService writes a new service and waits for it to come up.
func (m *Manager) startService(ctx context.Context, j *job, svc skiff.Service) (skiff.ServiceStatus, error) {
	if svc.CreatedAt.IsZero() {
		svc.CreatedAt = time.Now().UTC()
	}
	if _, err := m.st.Services.Create(ctx, svc.Key(), svc); err != nil && !errors.Is(err, skiff.ErrConflict) {
		return skiff.ServiceStatus{}, err
	}
	j.say("Starting %s server %s on node %s", svc.Kind, svc.Name, svc.Node)
	return m.waitService(ctx, j, svc)
}

// sharedPostgres is the admin URL of the shared PostgreSQL server and the
// address clients reach it at, starting the platform's own shared server
// the first time one is needed.
func (m *Manager) sharedPostgres(ctx context.Context, j *job) (admin, addr string, err error) {
	if m.cfg.PostgresURL != "" {
		u, err := url.Parse(m.cfg.PostgresURL)
		if err != nil || u.Host == "" {
			return "", "", fmt.Errorf("the shared PostgreSQL server's admin URL (--postgres-url) is not a URL")
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "5432")
		}
		return m.cfg.PostgresURL, host, nil
	}
	svc, err := m.service(ctx, skiff.SharedPostgres)
	if errors.Is(err, skiff.ErrNotFound) {
		node, perr := m.placeService(ctx, "")
		if perr != nil {
			return "", "", perr
		}
		_, sealed, serr := m.password()
		if serr != nil {
			return "", "", serr
		}
		svc = skiff.Service{Name: skiff.SharedPostgres, Kind: skiff.AddonPostgres, Node: node, Password: sealed, Generation: 1}
		if _, err = m.startService(ctx, j, svc); err != nil {
			return "", "", err
		}
		// Another job may have made it first: take whichever is stored.
		svc, err = m.service(ctx, skiff.SharedPostgres)
	}
	if err != nil {
		return "", "", err
	}
	st, err := m.waitService(ctx, j, svc)
	if err != nil {
		return "", "", err
	}
	admin, err = m.superuserURL(svc, st.Addr)
	return admin, st.Addr, err
}

// superuserURL is the URL the platform manages a server through.
func (m *Manager) superuserURL(svc skiff.Service, addr string) (string, error) {
	pw, err := m.st.Unseal(svc.Password)
	if err != nil {
		return "", err
	}
	if svc.Kind == skiff.AddonRedis {
		return (&url.URL{Scheme: "redis", User: url.UserPassword("default", string(pw)), Host: addr, Path: "/0"}).String(), nil
	}
	return (&url.URL{Scheme: "postgres", User: url.UserPassword("skiff", string(pw)), Host: addr, Path: "/postgres",
		RawQuery: "sslmode=disable"}).String(), nil
}
