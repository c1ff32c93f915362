package addons

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// DefaultRedisMemory bounds a Redis server created without --max-memory.
const DefaultRedisMemory = 64 << 20

// evictions are Redis's maxmemory policies.
var evictions = []string{"noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"}

// checkSpec validates what a create asks for and fills in the defaults.
func checkSpec(spec *skiff.Addon) error {
	switch spec.Type {
	case skiff.AddonPostgres:
		if spec.Plan == "" {
			spec.Plan = skiff.PlanShared
		}
		if spec.Plan != skiff.PlanShared && spec.Plan != skiff.PlanDedicated {
			return skiff.Errorf(skiff.KindInvalid, "the plans of postgres are shared (a database on the platform's server) and dedicated (a server of the app's own)",
				"unknown plan %q", spec.Plan)
		}
		if spec.HA {
			return skiff.Errorf(skiff.KindInvalid, "take scheduled backups instead (skiff backups schedule)", "--ha is for redis add-ons")
		}
	case skiff.AddonRedis:
		if spec.Plan == "" {
			spec.Plan = skiff.PlanDedicated
		}
		if spec.Plan != skiff.PlanDedicated {
			return skiff.Errorf(skiff.KindInvalid, "every redis add-on is a server of its own: leave out --plan", "redis has no %s plan", spec.Plan)
		}
		if spec.MaxMemory == 0 {
			spec.MaxMemory = DefaultRedisMemory
		}
		if spec.MaxMemory < 1<<20 {
			return skiff.Errorf(skiff.KindInvalid, "give at least 1mb", "--max-memory %d is too small", spec.MaxMemory)
		}
		if spec.Eviction == "" {
			spec.Eviction = "noeviction"
		}
		ok := false
		for _, e := range evictions {
			ok = ok || e == spec.Eviction
		}
		if !ok {
			return skiff.Errorf(skiff.KindInvalid, "the policies are "+strings.Join(evictions, ", "), "unknown eviction policy %q", spec.Eviction)
		}
	default:
		return skiff.Errorf(skiff.KindInvalid, "the types are postgres and redis", "unknown add-on type %q", spec.Type)
	}
	if spec.Name != "" {
		if err := skiff.ValidateAddonName(spec.Name); err != nil {
			return err
		}
	}
	if spec.ConfigVar != "" {
		return skiff.ValidateConfigKey(spec.ConfigVar)
	}
	return nil
}

// name fills in the add-on's name and config var from the app's others.
func name(spec *skiff.Addon, others []skiff.Addon) error {
	names, vars, ofType := map[string]bool{}, map[string]bool{}, 0
	for _, o := range others {
		names[o.Name], vars[o.ConfigVar] = true, true
		if o.Type == spec.Type {
			ofType++
		}
	}
	if spec.Name == "" {
		for n := 1; ; n++ {
			if spec.Name = fmt.Sprintf("%s-%d", spec.Type, n); !names[spec.Name] {
				break
			}
		}
	}
	if names[spec.Name] {
		return skiff.Errorf(skiff.KindConflict, "choose another name with --name", "app %s has an add-on %s already", spec.App, spec.Name)
	}
	if spec.ConfigVar == "" {
		for n := ofType + 1; ; n++ {
			if spec.ConfigVar = skiff.DefaultConfigVar(spec.Type, n); !vars[spec.ConfigVar] {
				break
			}
		}
	}
	if vars[spec.ConfigVar] {
		return skiff.Errorf(skiff.KindConflict, "choose another config var with --as", "another add-on of %s sets %s", spec.App, spec.ConfigVar)
	}
	return nil
}

// create provisions a new add-on and puts its URL in the app's config.
func (m *Manager) create(ctx context.Context, j *job) (*skiff.Addon, error) {
	if j.Spec == nil {
		return nil, skiff.Errorf(skiff.KindInvalid, "", "a create needs the add-on's type")
	}
	spec := *j.Spec
	spec.App = j.App
	if err := checkSpec(&spec); err != nil {
		return nil, err
	}
	if _, _, err := m.st.Apps.Get(ctx, j.App); err != nil {
		if errors.Is(err, skiff.ErrNotFound) {
			return nil, skiff.Errorf(skiff.KindNotFound, "skiff apps lists the apps", "no app %s", j.App)
		}
		return nil, err
	}
	others, err := m.st.Addons.Values(ctx, j.App+".*")
	if err != nil {
		return nil, err
	}
	if err := name(&spec, others); err != nil {
		return nil, err
	}
	ctx, release, err := m.hold(ctx, j.App, spec.Name)
	if err != nil {
		return nil, err
	}
	defer release()

	pw, sealed, err := m.password()
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	a := skiff.Addon{
		Name: spec.Name, App: j.App, Type: spec.Type, Plan: spec.Plan, State: skiff.AddonCreating, ConfigVar: spec.ConfigVar,
		HA: spec.HA, MaxMemory: spec.MaxMemory, Eviction: spec.Eviction, NoPersistence: spec.NoPersistence,
		User: dbName(j.App, spec.Name), Password: sealed, CreatedAt: now, UpdatedAt: now,
	}
	if a.Type == skiff.AddonPostgres {
		a.Database = a.User
	}
	if _, err := m.st.Addons.Create(ctx, a.Key(), a); err != nil {
		if errors.Is(err, skiff.ErrConflict) {
			return nil, skiff.Errorf(skiff.KindConflict, "choose another name with --name", "app %s has an add-on %s already", j.App, a.Name)
		}
		return nil, err
	}
	j.say("Creating %s (%s %s) for %s", a.Name, a.Type, a.Plan, a.App)
	fail := func(err error) (*skiff.Addon, error) {
		_ = m.setAddon(context.WithoutCancel(ctx), &a, func(c *skiff.Addon) {
			c.State, c.Error = skiff.AddonFailed, err.Error()
		})
		return nil, err
	}
	if err := m.provision(ctx, j, &a, pw); err != nil {
		return fail(err)
	}
	if err := m.setURL(ctx, j, a, addonURL(a, pw), fmt.Sprintf("Attach %s as %s", a.Name, a.ConfigVar)); err != nil {
		return fail(err)
	}
	if err := m.setAddon(ctx, &a, func(c *skiff.Addon) {
		c.State, c.Error, c.Service, c.Replica, c.Addr = skiff.AddonReady, "", a.Service, a.Replica, a.Addr
	}); err != nil {
		return nil, err
	}
	m.st.Emit(skiff.Event{App: a.App, Type: skiff.EventAddonCreated, Component: skiff.RoleAddons, Actor: j.Actor,
		Message: fmt.Sprintf("Add-on %s (%s %s) created as %s by %s", a.Name, a.Type, a.Plan, a.ConfigVar, orSomeone(j.Actor))})
	j.say("%s is ready as %s", a.Name, a.ConfigVar)
	return &a, nil
}

// provision makes the add-on's server, database and user; it sets a's
// Service, Replica and Addr.
func (m *Manager) provision(ctx context.Context, j *job, a *skiff.Addon, pw string) error {
	switch {
	case a.Type == skiff.AddonPostgres && a.Plan == skiff.PlanShared:
		admin, addr, err := m.sharedPostgres(ctx, j)
		if err != nil {
			return err
		}
		a.Service, a.Addr = skiff.SharedPostgres, addr
		j.say("Creating database %s on the shared server", a.Database)
		return pgCreate(ctx, admin, a.Database, a.User, pw)
	case a.Type == skiff.AddonPostgres:
		svc, st, err := m.newServer(ctx, j, *a, "", "")
		if err != nil {
			return err
		}
		a.Service, a.Addr = svc.Name, st.Addr
		admin, err := m.superuserURL(svc, st.Addr)
		if err != nil {
			return err
		}
		j.say("Creating database %s", a.Database)
		return pgCreate(ctx, admin, a.Database, a.User, pw)
	default:
		svc, st, err := m.newServer(ctx, j, *a, "", "")
		if err != nil {
			return err
		}
		a.Service, a.Addr = svc.Name, st.Addr
		if err := m.redisUser(ctx, svc, st.Addr, a.User, pw); err != nil {
			return err
		}
		if a.HA {
			rs, rst, err := m.newServer(ctx, j, *a, svc.Name, svc.Node)
			if err != nil {
				return err
			}
			a.Replica = rs.Name
			if err := m.redisUser(ctx, rs, rst.Addr, a.User, pw); err != nil {
				return err
			}
		}
		return nil
	}
}

// newServer places and starts a server of the add-on's own: a replica of
// primary (placed away from avoid) if primary is set.
func (m *Manager) newServer(ctx context.Context, j *job, a skiff.Addon, primary, avoid string) (skiff.Service, skiff.ServiceStatus, error) {
	node, err := m.placeService(ctx, avoid)
	if err != nil {
		return skiff.Service{}, skiff.ServiceStatus{}, err
	}
	sealed := []byte(nil)
	if primary != "" {
		p, err := m.service(ctx, primary)
		if err != nil {
			return skiff.Service{}, skiff.ServiceStatus{}, err
		}
		sealed = p.Password // a replica authenticates to its primary with the primary's password
	} else if _, sealed, err = m.password(); err != nil {
		return skiff.Service{}, skiff.ServiceStatus{}, err
	}
	svc := skiff.Service{
		Name: a.App + "-" + a.Name + "-" + randomID(4), Kind: a.Type, Node: node, App: a.App, Addon: a.Name,
		Password: sealed, MaxMemory: a.MaxMemory, Eviction: a.Eviction, NoPersistence: a.NoPersistence,
		ReplicaOf: primary, Generation: 1,
	}
	st, err := m.startService(ctx, j, svc)
	return svc, st, err
}

// dbName is the database and user name of an add-on: readable, and made
// unique on a shared server by a random suffix.
func dbName(app, addon string) string {
	return strings.ReplaceAll(app+"_"+addon, "-", "_") + "_" + randomID(4)
}

// addonURL is the URL an app reaches its add-on at, with the user's
// password.
func addonURL(a skiff.Addon, pw string) string {
	u := &url.URL{Scheme: "postgres", User: url.UserPassword(a.User, pw), Host: a.Addr, Path: "/" + a.Database}
	if a.Type == skiff.AddonRedis {
		u.Scheme, u.Path = "redis", "/0"
	}
	return u.String()
}

// setURL puts the add-on's URL in the app's config (or takes it out, for
// an empty url) and releases the change when the app has a release.
func (m *Manager) setURL(ctx context.Context, j *job, a skiff.Addon, u, desc string) error {
	app, _, err := m.st.Apps.Get(ctx, a.App)
	if err != nil {
		return err
	}
	vars, version, changed, err := m.st.UpdateConfig(ctx, a.App, func(vars map[string]string) error {
		cur, ok := vars[a.ConfigVar]
		switch {
		case u == "" && !ok, u != "" && cur == u:
			return store.ErrNoChange
		case u == "":
			delete(vars, a.ConfigVar)
		default:
			vars[a.ConfigVar] = u
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set %s of %s: %w", a.ConfigVar, a.App, err)
	}
	if changed {
		m.st.Emit(skiff.Event{App: a.App, Type: skiff.EventConfigChanged, Component: skiff.RoleAddons, Actor: j.Actor,
			Message: desc + " by " + orSomeone(j.Actor)})
	}
	rel, made, err := m.st.ReleaseConfig(ctx, app, vars, version, desc, j.Actor, !changed)
	if err != nil {
		return fmt.Errorf("release the config of %s: %w", a.App, err)
	}
	if made {
		j.say("Releasing %s of %s with %s", rel.Label(), a.App, a.ConfigVar)
	}
	return nil
}

func orSomeone(actor string) string {
	if actor == "" {
		return "the platform"
	}
	return actor
}

// holdAddon takes the lease of app's add-on name, then reads it: read
// under the lease, it cannot change before the job is done with it. The
// returned func gives the lease back.
func (m *Manager) holdAddon(ctx context.Context, app, name string) (context.Context, func(), skiff.Addon, error) {
	hctx, release, err := m.hold(ctx, app, name)
	if err != nil {
		return nil, nil, skiff.Addon{}, err
	}
	a, err := m.addon(hctx, app, name)
	if err != nil {
		release()
		return nil, nil, a, err
	}
	return hctx, release, a, nil
}

// holdReady is holdAddon for the add-on a job changes, which must be
// ready.
func (m *Manager) holdReady(ctx context.Context, j *job) (context.Context, func(), skiff.Addon, error) {
	hctx, release, a, err := m.holdAddon(ctx, j.App, j.Addon)
	if err != nil {
		return nil, nil, a, err
	}
	if a.State != skiff.AddonReady {
		release()
		return nil, nil, a, skiff.Errorf(skiff.KindConflict, "skiff addons info "+a.Name+" -a "+a.App+" shows why; destroy it and create another if it failed",
			"add-on %s of %s is %s, not ready", a.Name, a.App, a.State)
	}
	return hctx, release, a, nil
}

// confirm checks a destructive job's confirmation.
func confirm(j *job, what string) error {
	if j.Confirm != j.App {
		return skiff.Errorf(skiff.KindInvalid, fmt.Sprintf("to go on, run it again with --confirm %s", j.App),
			"%s cannot be undone: confirm it with the app's name", what)
	}
	return nil
}

// destroy takes a last backup of an add-on, removes its database or
// server, and takes its URL out of the app's config.
func (m *Manager) destroy(ctx context.Context, j *job) (*skiff.Addon, error) {
	if err := confirm(j, "destroying add-on "+j.Addon); err != nil {
		return nil, err
	}
	ctx, release, a, err := m.holdAddon(ctx, j.App, j.Addon)
	if err != nil {
		return nil, err
	}
	defer release()
	if a.State == skiff.AddonReady && j.Kind != skiff.AddonWithApp {
		j.say("Taking a backup of %s first", a.Name)
		if _, err := m.captureHeld(ctx, j, a, skiff.BackupDestroy); err != nil {
			return nil, skiff.Errorf(skiff.KindFailed, "fix what stops the backup and destroy it again; the add-on is as it was",
				"could not take a backup of %s before destroying it: %v", a.Name, err)
		}
	}
	if err := m.setAddon(ctx, &a, func(c *skiff.Addon) { c.State = skiff.AddonDestroying }); err != nil {
		return nil, err
	}
	pw, err := m.st.Unseal(a.Password)
	if err != nil {
		return nil, err
	}
	// The URL goes first: the app stops using the add-on before it goes.
	vars, _, err := m.st.Config(ctx, a.App)
	if err != nil {
		return nil, err
	}
	if vars[a.ConfigVar] == addonURL(a, string(pw)) {
		if err := m.setURL(ctx, j, a, "", fmt.Sprintf("Detach %s (%s)", a.Name, a.ConfigVar)); err != nil {
			return nil, err
		}
	}
	switch {
	case a.Type == skiff.AddonPostgres && a.Plan == skiff.PlanShared && a.Addr != "":
		admin, _, err := m.sharedPostgres(ctx, j)
		if err != nil {
			return nil, err
		}
		j.say("Dropping database %s", a.Database)
		if err := pgDrop(ctx, admin, a.Database, a.User); err != nil {
			return nil, err
		}
	default:
		for _, name := range []string{a.Service, a.Replica} {
			if name == "" {
				continue
			}
			svc, err := m.service(ctx, name)
			if errors.Is(err, skiff.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			j.say("Stopping server %s on node %s and removing its data", svc.Name, svc.Node)
			if err := m.st.Services.Delete(ctx, svc.Key()); err != nil {
				return nil, err
			}
		}
		// A server half made by a failed create is found by its owner.
		if all, err := m.st.Services.Values(ctx, ""); err == nil {
			for _, svc := range all {
				if svc.App == a.App && svc.Addon == a.Name {
					_ = m.st.Services.Delete(ctx, svc.Key())
				}
			}
		}
	}
	if err := m.st.Addons.Delete(ctx, a.Key()); err != nil {
		return nil, err
	}
	m.st.Emit(skiff.Event{App: a.App, Type: skiff.EventAddonDestroyed, Component: skiff.RoleAddons, Actor: j.Actor,
		Message: fmt.Sprintf("Add-on %s destroyed by %s", a.Name, orSomeone(j.Actor))})
	j.say("Destroyed %s; its backups are kept (skiff backups -a %s)", a.Name, a.App)
	a.State = skiff.AddonDestroying
	return &a, nil
}

// rotate gives the add-on's user a new password and the app its new URL.
func (m *Manager) rotate(ctx context.Context, j *job) (*skiff.Addon, error) {
	ctx, release, a, err := m.holdReady(ctx, j)
	if err != nil {
		return nil, err
	}
	defer release()
	pw, sealed, err := m.password()
	if err != nil {
		return nil, err
	}
	j.say("Setting a new password for %s", a.User)
	switch a.Type {
	case skiff.AddonPostgres:
		admin, err := m.adminURL(ctx, j, a)
		if err != nil {
			return nil, err
		}
		if err := pgPassword(ctx, admin, a.User, pw); err != nil {
			return nil, err
		}
	default:
		for _, name := range []string{a.Service, a.Replica} {
			if name == "" {
				continue
			}
			svc, err := m.service(ctx, name)
			if err != nil {
				return nil, err
			}
			st, err := m.waitService(ctx, j, svc)
			if err != nil {
				return nil, err
			}
			if err := m.redisUser(ctx, svc, st.Addr, a.User, pw); err != nil {
				return nil, err
			}
		}
	}
	if err := m.setAddon(ctx, &a, func(c *skiff.Addon) {
		c.Password, c.CredentialsRotatedAt = sealed, time.Now().UTC()
	}); err != nil {
		return nil, err
	}
	if err := m.setURL(ctx, j, a, addonURL(a, pw), fmt.Sprintf("Rotate the credentials of %s", a.Name)); err != nil {
		return nil, err
	}
	m.st.Emit(skiff.Event{App: a.App, Type: skiff.EventAddonRotated, Component: skiff.RoleAddons, Actor: j.Actor,
		Message: fmt.Sprintf("Credentials of %s rotated by %s", a.Name, orSomeone(j.Actor))})
	return &a, nil
}

// adminURL is the superuser URL of the PostgreSQL server an add-on lives on.
func (m *Manager) adminURL(ctx context.Context, j *job, a skiff.Addon) (string, error) {
	if a.Service == skiff.SharedPostgres {
		admin, _, err := m.sharedPostgres(ctx, j)
		return admin, err
	}
	svc, err := m.service(ctx, a.Service)
	if err != nil {
		return "", err
	}
	st, err := m.waitService(ctx, j, svc)
	if err != nil {
		return "", err
	}
	return m.superuserURL(svc, st.Addr)
}
