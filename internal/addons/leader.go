package addons

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/skiff-paas/skiff/internal/addons/backup"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

func isNoSpace(err error) bool { return errors.Is(err, syscall.ENOSPC) }

// lead does what is due while this node holds the addons lease: every
// tick, scheduled backups (each verified once taken), retention, usage
// measures (once a minute), the promotion of Redis replicas whose
// primary's node died, and creations left half done.
func (m *Manager) lead(ctx context.Context, lease *store.Lease) error {
	// The lease is renewed on its own clock: the work of a tick may take
	// longer than the lease lives. Losing it stops the work.
	ctx, stop := lease.Hold(ctx)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	busy := map[string]bool{} // add-ons with a scheduled backup under way
	var mu sync.Mutex         // guards busy
	var measured time.Time
	t := time.NewTicker(m.cfg.Tick)
	defer t.Stop()
	for {
		addons, err := m.st.Addons.Values(ctx, "")
		if err != nil {
			m.log.Warn("read add-ons", "err", err)
		}
		now := time.Now().UTC()
		for _, a := range addons {
			switch {
			case a.State == skiff.AddonReady && a.HA:
				m.failover(ctx, a)
			case a.State == skiff.AddonCreating && now.Sub(a.UpdatedAt) > 10*time.Minute:
				m.abandoned(ctx, a)
			}
			if a.State != skiff.AddonReady || a.BackupAt == "" {
				continue
			}
			all, err := m.st.Backups.Values(ctx, a.App+".*")
			if err != nil {
				continue
			}
			mu.Lock()
			due := !busy[a.Key()] && scheduledDue(a, all, now)
			if due {
				busy[a.Key()] = true
			}
			mu.Unlock()
			if due {
				wg.Go(func() {
					defer func() { mu.Lock(); delete(busy, a.Key()); mu.Unlock() }()
					m.scheduled(ctx, a)
				})
			}
		}
		m.retain(ctx)
		if now.Sub(measured) >= m.cfg.UsageEvery {
			measured = now
			for _, a := range addons {
				if a.State == skiff.AddonReady {
					m.measure(ctx, a)
				}
			}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

// ownJob is a job the role gives itself: its progress goes to the log.
func (m *Manager) ownJob(a skiff.Addon, op string) *job {
	return &job{AddonRequest: skiff.AddonRequest{App: a.App, Addon: a.Name, Op: op}, m: m,
		log: m.log.With("app", a.App, "addon", a.Name, "op", op)}
}

// scheduledDue reports whether an add-on's daily backup is due: its time
// today has come (within the last 12 hours) and no scheduled backup of it
// began since.
func scheduledDue(a skiff.Addon, backups []skiff.Backup, now time.Time) bool {
	at, err := time.Parse("15:04", a.BackupAt)
	if err != nil {
		return false
	}
	slot := time.Date(now.Year(), now.Month(), now.Day(), at.Hour(), at.Minute(), 0, 0, time.UTC)
	if slot.After(now) {
		slot = slot.AddDate(0, 0, -1)
	}
	if now.Sub(slot) > 12*time.Hour {
		return false
	}
	for _, b := range backups {
		if b.Addon == a.Name && b.Kind == skiff.BackupScheduled && !b.StartedAt.Before(slot) {
			return false
		}
	}
	return true
}

// scheduled takes an add-on's daily backup and verifies it.
func (m *Manager) scheduled(ctx context.Context, a skiff.Addon) {
	j := m.ownJob(a, "scheduled backup")
	hctx, release, a, err := m.holdAddon(ctx, a.App, a.Name)
	if err != nil {
		j.log.Info("scheduled backup put off", "err", err)
		return
	}
	if a.State != skiff.AddonReady || a.BackupAt == "" {
		release() // changed since the tick read it
		return
	}
	started := time.Now()
	b, err := m.captureHeld(hctx, j, a, skiff.BackupScheduled)
	observeJob("scheduled_backup", err, started) // metrics.go
	release()
	if err != nil {
		j.log.Warn("scheduled backup failed", "err", err)
		return
	}
	if _, err := m.verifyBackup(ctx, j, *b); err != nil {
		j.log.Warn("verify the scheduled backup", "backup", b.ID, "err", err)
	}
}

// retain deletes the backups the retention policy no longer keeps.
func (m *Manager) retain(ctx context.Context) {
	all, err := m.st.Backups.Values(ctx, "")
	if err != nil {
		return
	}
	byAddon := map[string][]skiff.Backup{}
	for _, b := range all {
		k := skiff.AddonKey(b.App, b.Addon)
		byAddon[k] = append(byAddon[k], b)
	}
	for _, bs := range byAddon {
		for _, b := range backup.Expired(bs, time.Now().UTC(), m.cfg.Retention) {
			if err := m.st.BackupFiles.Delete(ctx, b.Key()); err != nil && !errors.Is(err, skiff.ErrNotFound) && !notFoundObject(err) {
				m.log.Warn("delete an expired backup", "backup", b.Key(), "err", err)
				continue
			}
			if err := m.st.Backups.Delete(ctx, b.Key()); err != nil {
				m.log.Warn("delete an expired backup", "backup", b.Key(), "err", err)
				continue
			}
			m.log.Info("expired backup deleted", "backup", b.Key(), "kind", b.Kind, "started", b.StartedAt)
		}
	}
}

// measure records an add-on's usage in its record and the USAGE stream.
func (m *Manager) measure(ctx context.Context, a skiff.Addon) {
	// A server that is down is measured next time, not waited for.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var u skiff.AddonUsage
	var err error
	switch a.Type {
	case skiff.AddonPostgres:
		var admin string
		if admin, err = m.adminURL(ctx, &job{m: m, log: m.log}, a); err == nil {
			u, err = pgUsage(ctx, admin, a.Database)
		}
	default:
		var svc skiff.Service
		if svc, err = m.service(ctx, a.Service); err == nil {
			var st skiff.ServiceStatus
			if st, _, err = m.st.ServiceStat.Get(ctx, svc.Name); err == nil {
				u, err = m.redisUsage(ctx, svc, st.Addr)
			}
		}
	}
	if err != nil {
		m.log.Debug("measure an add-on", "app", a.App, "addon", a.Name, "err", err)
		return
	}
	if err := m.setAddon(ctx, &a, func(c *skiff.Addon) { c.Usage = &u }); err != nil {
		return
	}
	data, _ := json.Marshal(skiff.AddonUsageSample{App: a.App, Addon: a.Name, Type: a.Type, Plan: a.Plan, AddonUsage: u})
	if _, err := m.st.JS.Publish(ctx, skiff.AddonUsageSubject(a.App, a.Name), data); err != nil {
		m.log.Debug("record add-on usage", "err", err)
	}
}

// abandoned marks failed a creation whose job is gone.
func (m *Manager) abandoned(ctx context.Context, a skiff.Addon) {
	if holder, err := m.st.LeaseHolder(ctx, "addon."+a.App+"."+a.Name); err != nil || holder != "" {
		return
	}
	_ = m.setAddon(ctx, &a, func(c *skiff.Addon) {
		if c.State == skiff.AddonCreating {
			c.State, c.Error = skiff.AddonFailed, "the node creating it stopped before it was ready: destroy it and create it again"
		}
	})
}

// failover promotes the replica of a Redis add-on whose primary's node is
// dead, points the app at it, and places a new replica where it can.
func (m *Manager) failover(ctx context.Context, a skiff.Addon) {
	primary, err := m.service(ctx, a.Service)
	if err != nil {
		return
	}
	node, _, err := m.st.Nodes.Get(ctx, primary.Node)
	primaryDead := (err == nil && node.State == skiff.NodeDead) || errors.Is(err, skiff.ErrNotFound)
	if !primaryDead {
		if a.Replica == "" {
			m.replace(ctx, a, primary)
		}
		return
	}
	if a.Replica == "" {
		return // nothing to promote: the add-on waits for its node
	}
	j := m.ownJob(a, "failover")
	hctx, release, a, err := m.holdAddon(ctx, a.App, a.Name)
	if err != nil {
		return
	}
	defer release()
	if a.State != skiff.AddonReady || a.Service != primary.Name || a.Replica == "" {
		return // changed since the tick read it
	}
	replica, err := m.service(hctx, a.Replica)
	if err != nil {
		j.log.Warn("find the replica", "err", err)
		return
	}
	if st, _, err := m.st.ServiceStat.Get(hctx, replica.Name); err != nil || st.State != skiff.ServiceUp {
		j.log.Warn("the replica is not up: nothing to promote", "replica", replica.Name)
		return
	}
	j.log.Warn("primary's node is dead: promoting the replica", "primary", primary.Name, "node", primary.Node, "replica", replica.Name)
	if _, _, err := m.st.Services.Update(hctx, replica.Key(), func(s *skiff.Service) error {
		s.ReplicaOf = ""
		return nil
	}); err != nil {
		j.log.Warn("promote the replica", "err", err)
		return
	}
	replica.ReplicaOf = ""
	st, err := m.waitPrimary(hctx, replica)
	if err != nil {
		j.log.Warn("promote the replica", "err", err)
		return
	}
	_ = m.st.Services.Delete(hctx, primary.Key()) // fenced: if its node returns, its host removes it
	pw, err := m.st.Unseal(a.Password)
	if err != nil {
		return
	}
	if err := m.setAddon(hctx, &a, func(c *skiff.Addon) { c.Service, c.Replica, c.Addr = replica.Name, "", st.Addr }); err != nil {
		j.log.Warn("record the promotion", "err", err)
		return
	}
	if err := m.setURL(hctx, j, a, addonURL(a, string(pw)), fmt.Sprintf("Fail %s over to its replica on %s", a.Name, replica.Node)); err != nil {
		j.log.Warn("point the app at the new primary", "err", err)
	}
	m.st.Emit(skiff.Event{App: a.App, Type: skiff.EventAddonFailover, Component: skiff.RoleAddons,
		Message: fmt.Sprintf("Node %s of %s's primary died: replica on %s promoted", primary.Node, a.Name, replica.Node)})
}

// waitPrimary waits for a promoted replica to report itself primary.
func (m *Manager) waitPrimary(ctx context.Context, svc skiff.Service) (skiff.ServiceStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		st, _, err := m.st.ServiceStat.Get(ctx, svc.Name)
		if err == nil && st.State == skiff.ServiceUp && st.Role == "primary" {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("replica %s did not become primary: %w", svc.Name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// replace gives an HA add-on that lost its replica a new one, on a node
// other than its primary's, when there is one.
func (m *Manager) replace(ctx context.Context, a skiff.Addon, primary skiff.Service) {
	if _, err := m.placeService(ctx, primary.Node); err != nil {
		return
	}
	j := m.ownJob(a, "new replica")
	hctx, release, a, err := m.holdAddon(ctx, a.App, a.Name)
	if err != nil {
		return
	}
	defer release()
	if a.State != skiff.AddonReady || a.Service != primary.Name || a.Replica != "" {
		return // changed since the tick read it
	}
	rs, rst, err := m.newServer(hctx, j, a, primary.Name, primary.Node)
	if err != nil {
		j.log.Warn("start a new replica", "err", err)
		return
	}
	pw, err := m.st.Unseal(a.Password)
	if err == nil {
		err = m.redisUser(hctx, rs, rst.Addr, a.User, string(pw))
	}
	if err == nil {
		err = m.setAddon(hctx, &a, func(c *skiff.Addon) { c.Replica = rs.Name })
	}
	if err != nil {
		j.log.Warn("start a new replica", "err", err)
		return
	}
	j.log.Info("new replica", "replica", rs.Name, "node", rs.Node)
}
