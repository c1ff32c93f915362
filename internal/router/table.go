package router

import (
	"context"
	"sort"
	"sync/atomic"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// table maps hostnames to routes. It is never changed once published.
type table struct {
	hosts map[string]*route
}

// route is an app's set of backends.
type route struct {
	app      string
	backends []backend
	next     atomic.Uint64 // round-robin position
}

type backend struct {
	addr string
	id   string
}

// view is the part of the state the table is built from.
type view struct {
	apps      map[string]skiff.App
	instances map[string]skiff.Instance // by key
	domains   map[string]skiff.Domain   // by hostname
}

// build makes the table for a view: every app at NAME.domain, and its
// custom domains.
func build(domain string, v *view) *table {
	up := map[string][]skiff.Instance{}
	for _, i := range v.instances {
		if i.Proc == "web" && i.State == skiff.StateUp && i.Addr != "" {
			up[i.App] = append(up[i.App], i)
		}
	}
	t := &table{hosts: make(map[string]*route, len(v.apps)+len(v.domains))}
	routes := make(map[string]*route, len(v.apps))
	for name, app := range v.apps {
		insts := up[name]
		var current []skiff.Instance
		for _, i := range insts {
			if i.Release == app.Current {
				current = append(current, i)
			}
		}
		if len(current) > 0 {
			insts = current
		}
		sort.Slice(insts, func(a, b int) bool { return insts[a].ID < insts[b].ID })
		rt := &route{app: name, backends: make([]backend, len(insts))}
		for k, i := range insts {
			rt.backends[k] = backend{addr: i.Addr, id: i.ID}
		}
		routes[name] = rt
		t.hosts[skiff.AppHost(name, domain)] = rt
	}
	for host, d := range v.domains {
		if rt := routes[d.App]; rt != nil {
			t.hosts[host] = rt
		}
	}
	return t
}

type change struct {
	bucket  string
	key     string
	deleted bool
	synced  bool
	value   any
}

func forward[T any](ctx context.Context, b *store.Bucket[T], out chan<- change) error {
	ch, err := b.Watch(ctx, "")
	if err != nil {
		return err
	}
	go func() {
		for c := range ch {
			select {
			case out <- change{bucket: b.Name(), key: c.Key, deleted: c.Deleted, synced: c.Synced, value: c.Value}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}

// follow keeps the table in step with the state until ctx ends. It closes
// synced once the first complete table is in place.
func (r *Router) follow(ctx context.Context, synced chan<- struct{}) error {
	changes := make(chan change, 1024)
	for _, err := range []error{
		forward(ctx, r.st.Apps, changes),
		forward(ctx, r.st.Instances, changes),
		forward(ctx, r.st.Domains, changes),
	} {
		if err != nil {
			return err
		}
	}
	v := &view{apps: map[string]skiff.App{}, instances: map[string]skiff.Instance{}, domains: map[string]skiff.Domain{}}
	const buckets = 3
	n := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-changes:
			// Take every change already queued, then rebuild once.
			dirty := v.apply(c, &n)
		drain:
			for {
				select {
				case c := <-changes:
					dirty = v.apply(c, &n) || dirty
				default:
					break drain
				}
			}
			if n < buckets {
				continue
			}
			if dirty || n == buckets && synced != nil {
				r.table.Store(build(r.cfg.Domain, v))
			}
			if synced != nil {
				close(synced)
				synced = nil
			}
		}
	}
}

// apply records a change; it reports whether the view changed.
func (v *view) apply(c change, synced *int) bool {
	if c.synced {
		*synced++
		return false
	}
	switch c.bucket {
	case skiff.BucketApps:
		store.Apply(v.apps, c.key, c.deleted, c.value.(skiff.App))
	case skiff.BucketInstances:
		store.Apply(v.instances, c.key, c.deleted, c.value.(skiff.Instance))
	case skiff.BucketDomains:
		store.Apply(v.domains, c.key, c.deleted, c.value.(skiff.Domain))
	}
	return true
}
