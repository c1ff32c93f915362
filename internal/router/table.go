package router

import (
	"context"
	"crypto/tls"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// The routing state has three levels, each replaced only when it changes:
//
//   - the table maps hostnames to app entries; it is immutable, behind an
//     atomic pointer, and copied when a hostname comes or goes (an app or
//     a custom domain is added or removed);
//   - an app entry lives as long as its app; its route, behind an atomic
//     pointer of its own, is replaced when the app's backends change, so a
//     change of instances costs a small slice, not a table;
//   - a backend lives as long as its instance is up: its load counter,
//     health and idle connections carry over from route to route.
//
// One goroutine (follow) owns the view of the state and makes every
// change; requests only load pointers.

// table maps hostnames to apps. It is never changed once published.
type table struct {
	exact    *hostMap
	wildcard map[string]*appEntry // *.example.com by its suffix ".example.com"
}

// lookup finds the app of a lower-case host: by exact name (custom domains
// and APP.DOMAIN), then by the longest wildcard suffix. It allocates
// nothing.
func (t *table) lookup(host []byte) *appEntry {
	if e := t.exact.get(host); e != nil {
		return e
	}
	if len(t.wildcard) == 0 {
		return nil
	}
	for i := 0; i < len(host); i++ {
		if host[i] == '.' {
			if e := t.wildcard[string(host[i:])]; e != nil {
				return e
			}
		}
	}
	return nil
}

// appEntry is an app's place in the table.
type appEntry struct {
	name  string
	route atomic.Pointer[route]
	// settings are the app's router settings and maintenance mode, from
	// its record, replaced whole when it changes.
	settings atomic.Pointer[appSettings]
	metrics  *appMetrics
	// static is what the router serves of the app itself (static.go),
	// nil until loaded; wantStatic is what it should be loaded from, and
	// loading is set while a loader runs.
	static     atomic.Pointer[appStatic]
	wantStatic atomic.Pointer[staticKey]
	loading    atomic.Bool
}

// appSettings is what of an app's record the router acts on.
type appSettings struct {
	skiff.RouterSettings
	maintenance bool // answer with the maintenance page
}

// defaultSettings are those of an app that changed none.
var defaultSettings appSettings

// route is an app's backends at one moment.
//
// What a request reads of it comes first, so that with up to four
// backends it is all in the object's first cache line.
type route struct {
	backends []*backend
	rr       atomic.Uint64 // round-robin position
	// inline holds backends when there are this few, as most apps have:
	// a route is then one allocation, of the size of a backend (160
	// bytes), so that what a change keeps is all of one size class and
	// takes the slots that earlier changes' left.
	inline [14]*backend
	app    string
}

// newRoute makes an app's route of n backends, to be filled in.
func newRoute(app string, n int) *route {
	rt := &route{app: app}
	if n <= len(rt.inline) {
		rt.backends = rt.inline[:n]
	} else {
		rt.backends = make([]*backend, n)
	}
	return rt
}

// next chooses backends in turn, skipping those that are down or tried.
func (rt *route) next(now int64, tried []*backend) *backend {
	n := uint64(len(rt.backends))
	start := rt.rr.Add(1)
	var fallback *backend
	for i := uint64(0); i < n; i++ {
		b := rt.backends[(start+i)%n]
		if contains(tried, b) {
			continue
		}
		if b.up(now) {
			return b
		}
		if fallback == nil {
			fallback = b
		}
	}
	return fallback
}

// byID finds the backend of instance id, if it is up.
func (rt *route) byID(id []byte, now int64) *backend {
	for _, b := range rt.backends {
		if b.id == string(id) && b.up(now) {
			return b
		}
	}
	return nil
}

func contains(bs []*backend, b *backend) bool {
	for _, x := range bs {
		if x == b {
			return true
		}
	}
	return false
}

// backend is one web instance as the router sends it requests.
//
// What a request reads of it comes first: the object's first cache line
// holds all of it but the sticky cookie's ID.
type backend struct {
	// inflight counts the requests under way, for least-connections.
	inflight atomic.Int64
	// downUntil (unix nanoseconds) is set when a connection to the
	// backend was refused: until then it gets no requests, if any other
	// backend of its app may take them.
	downUntil atomic.Int64
	// pool holds the idle connections to addr, shared by every backend
	// at that address. Set when the backend first enters a route.
	pool *connPool
	name string // web.1, for the access log
	addr string
	id   string
	node string
	// text holds the strings above when they fit, so that a new
	// instance costs the router one allocation of one size, whose slot
	// the next new instance takes once this one is collected: after
	// many changes the heap is not left with spans kept in use by a few
	// small strings each.
	text [backendText]byte
}

// backendText is the room for a backend's strings in its own object: an
// instance ID, a host:port, web.N and a node name usually fit. With it a
// backend is 160 bytes, one of the runtime's size classes, as a route is.
const backendText = 72

// newBackend makes the backend of instance id from its record, not yet
// in a route (it has no pool).
func newBackend(id string, i skiff.Instance) *backend {
	var buf [32]byte
	b := &backend{}
	b.setText(id, i.Addr, processName(buf[:0], i), i.Node)
	return b
}

// processName appends what skiff.ProcessName makes of i to dst, without
// allocating.
func processName(dst []byte, i skiff.Instance) []byte {
	return strconv.AppendInt(append(append(dst, i.Proc...), '.'), int64(i.Index), 10)
}

// setText sets the backend's strings, in its own text if they fit.
func (b *backend) setText(id, addr string, name []byte, node string) {
	if len(id)+len(addr)+len(name)+len(node) > len(b.text) {
		all := id + addr + string(name) + node // one allocation rather than four
		b.id, all = all[:len(id)], all[len(id):]
		b.addr, all = all[:len(addr)], all[len(addr):]
		b.name, b.node = all[:len(name)], all[len(name):]
		return
	}
	rest := b.text[:0]
	put := func(s []byte) string {
		if len(s) == 0 {
			return ""
		}
		n := len(rest)
		rest = append(rest, s...)
		return unsafe.String(unsafe.SliceData(rest[n:]), len(s)) // never written again
	}
	b.id, b.addr, b.name, b.node = put([]byte(id)), put([]byte(addr)), put(name), put([]byte(node))
}

// same reports whether b is what newBackend would make of instance id's
// record i.
func (b *backend) same(id string, i skiff.Instance) bool {
	var buf [32]byte
	return b.id == id && b.addr == i.Addr && b.node == i.Node && b.name == string(processName(buf[:0], i))
}

// downFor is how long a backend that refused a connection is skipped.
const downFor = 2 * time.Second

func (b *backend) markDown(now int64) { b.downUntil.Store(now + int64(downFor)) }

func (b *backend) up(now int64) bool { return b.downUntil.Load() <= now }

// choose picks the backend of a request's attempt: the one its sticky
// cookie names (stuck, if up) first, then by the app's balance; nil when
// every backend was tried.
func (rt *route) choose(s *appSettings, stuck *backend, attempt int, now int64, tried []*backend) *backend {
	switch {
	case attempt == 0 && stuck != nil:
		return stuck
	case s.Balance == skiff.BalanceRoundRobin:
		return rt.next(now, tried)
	}
	return rt.pick(now, tried)
}

// pick chooses a backend for a request: of two taken at random, the one
// with fewer requests under way (the power of two choices), skipping
// backends that are down and any in tried. It returns nil when every
// backend was tried.
func (rt *route) pick(now int64, tried []*backend) *backend {
	bs := rt.backends
	n := len(bs)
	ok := func(b *backend) bool { return !contains(tried, b) }
	if n == 1 {
		if ok(bs[0]) {
			return bs[0]
		}
		return nil
	}
	if len(tried) == 0 {
		i := rand.IntN(n)
		j := rand.IntN(n - 1)
		if j >= i {
			j++
		}
		a, b := bs[i], bs[j]
		switch aUp, bUp := a.up(now), b.up(now); {
		case aUp && bUp:
			if b.inflight.Load() < a.inflight.Load() {
				return b
			}
			return a
		case aUp:
			return a
		case bUp:
			return b
		}
	}
	// Some were tried or found down: the least loaded of the rest that
	// are up, else of the rest.
	var best *backend
	for _, b := range bs {
		if !ok(b) {
			continue
		}
		switch {
		case best == nil:
			best = b
		case b.up(now) != best.up(now):
			if b.up(now) {
				best = b
			}
		case b.inflight.Load() < best.inflight.Load():
			best = b
		}
	}
	return best
}

// view is the part of the state the table is built from, kept by the
// goroutine that follows the state.
type view struct {
	domain    string
	apps      map[string]skiff.App
	instances map[string]map[string]webInstance // by app, then instance ID
	domains   map[string]skiff.Domain           // by key (skiff.DomainKey)
	entries   map[string]*appEntry              // by app
	pools     map[string]*sharedPool            // by address
	// dead holds the nodes the scheduler declared dead: their instances
	// get no requests, and requests under way on them are cut at once.
	dead map[string]bool
	// drain is how long requests under way on a retired backend's
	// connections may go on (Config.DrainTimeout; 0: without limit).
	drain time.Duration
	// up and current are updateApp's scratch space, kept so that a
	// change makes no garbage of them.
	up, current []webInstance
}

// webInstance is what the router keeps of a web instance that is up,
// stored by value in its app's map, keyed by its ID: its backend, made
// when the record comes (newBackend copies its strings, so that neither
// the decoded record nor the watched message whose subject the key is
// part of is kept alive for as long as the instance runs), and its
// release. A new instance costs that one allocation; nothing else lasts.
type webInstance struct {
	*backend
	release int
	// retired is set when a route dropped the backend (its pool is
	// released): if the instance is routed to again, it gets a new one.
	retired bool
}

// sharedPool is the connection pool of an address, and how many backends
// use it; one allocation.
type sharedPool struct {
	pool connPool
	refs int
}

// poolFor returns the pool of addr for one more backend.
func (v *view) poolFor(addr string) *connPool {
	p := v.pools[addr]
	if p == nil {
		p = &sharedPool{pool: connPool{drain: v.drain}}
		v.pools[addr] = p
	}
	p.refs++
	return &p.pool
}

// release lets go of addr's pool for one backend; the last one closes it:
// its idle connections at once, its busy ones after the drain timeout
// (pool.go), or at once too if abort (its node is dead). The address's
// next backend gets a new pool.
func (v *view) release(addr string, abort bool) {
	p := v.pools[addr]
	if p == nil {
		return
	}
	if p.refs--; p.refs <= 0 {
		p.pool.closeAll()
		if abort {
			p.pool.closeBusy()
		}
		delete(v.pools, addr)
	}
}

func newView(domain string) *view {
	return &view{domain: domain, apps: map[string]skiff.App{}, instances: map[string]map[string]webInstance{},
		domains: map[string]skiff.Domain{}, entries: map[string]*appEntry{},
		pools: map[string]*sharedPool{}, dead: map[string]bool{}}
}

// batch is what a run of changes touched.
type batch struct {
	apps  map[string]bool // apps whose backends may have changed
	hosts bool            // hostnames came or went
}

// apply records a change in the view.
func (v *view) apply(c change, b *batch) {
	switch c.bucket {
	case skiff.BucketApps:
		_, had := v.apps[c.key]
		store.Apply(v.apps, c.key, c.deleted, c.value.(skiff.App))
		if had == c.deleted {
			b.hosts = true
		}
		b.apps[c.key] = true
	case skiff.BucketInstances:
		app, id, _ := strings.Cut(c.key, ".")
		m := v.instances[app]
		i := c.value.(skiff.Instance)
		switch old, had := m[id]; {
		case c.deleted || i.Proc != "web" || i.State != skiff.StateUp || i.Addr == "":
			if !had {
				return // nothing the router had
			}
			delete(m, id)
			if len(m) == 0 {
				delete(v.instances, app)
			}
		case had && old.same(id, i):
			if old.release == i.Release {
				return // a change of what the router does not use
			}
			old.release = i.Release
			m[old.id] = old
		default:
			if m == nil {
				m = make(map[string]webInstance, 4)
				v.instances[strings.Clone(app)] = m
			}
			w := webInstance{backend: newBackend(id, i), release: i.Release}
			m[w.id] = w
		}
		b.apps[app] = true
	case skiff.BucketDomains:
		store.Apply(v.domains, c.key, c.deleted, c.value.(skiff.Domain))
		b.hosts = true
	case skiff.BucketNodes:
		// Heartbeats change nothing here; a node's death does.
		dead := !c.deleted && c.value.(skiff.Node).State == skiff.NodeDead
		if dead == v.dead[c.key] {
			return
		}
		if dead {
			v.dead[c.key] = true
		} else {
			delete(v.dead, c.key)
		}
		for app, m := range v.instances {
			for _, i := range m {
				if i.node == c.key {
					b.apps[app] = true
					break
				}
			}
		}
	}
}

// update brings the routes of the batch's apps up to date, and returns a
// new table if hostnames changed (nil otherwise).
func (v *view) update(b *batch) *table {
	for app := range b.apps {
		v.updateApp(app)
	}
	if !b.hosts {
		return nil
	}
	exact := make(map[string]*appEntry, len(v.entries)+len(v.domains))
	t := &table{wildcard: map[string]*appEntry{}}
	for name, e := range v.entries {
		exact[skiff.AppHost(name, v.domain)] = e
	}
	for _, d := range v.domains {
		e := v.entries[d.App]
		if e == nil {
			continue
		}
		host := d.Hostname
		if suffix, ok := strings.CutPrefix(host, "*"); ok {
			t.wildcard[suffix] = e
		} else {
			exact[host] = e
		}
	}
	t.exact = newHostMap(exact)
	return t
}

// updateApp makes the app's route from its web instances that are up: of
// the current release when any of those is up, else of any release (so
// that a switch of releases never leaves a gap while the watches catch
// up). Backends of instances still up are kept; those of instances gone
// are retired: they get no new requests, and their idle connections are
// closed.
func (v *view) updateApp(app string) {
	a, ok := v.apps[app]
	e := v.entries[app]
	if !ok {
		if e != nil {
			v.retire(e.route.Load(), nil)
			e.metrics.forget(app)
			delete(v.entries, app)
		}
		return
	}
	if e == nil {
		e = &appEntry{name: app, metrics: newAppMetrics(app)}
		e.route.Store(&route{})
		v.entries[app] = e
	}
	// Settings change far less often than instances: a change of
	// instances keeps them.
	if s := (appSettings{RouterSettings: a.Router, maintenance: a.Maintenance}); e.settings.Load() == nil || *e.settings.Load() != s {
		if s == defaultSettings {
			// Most apps': one object shared, which stays in the CPU's
			// caches, rather than one more cache line a request.
			e.settings.Store(&defaultSettings)
		} else {
			changed := s // only this one is allocated
			e.settings.Store(&changed)
		}
	}
	m := v.instances[app]
	up, current := v.up[:0], v.current[:0]
	for _, i := range m {
		if v.dead[i.node] {
			continue
		}
		up = append(up, i)
		if i.release == a.Current {
			current = append(current, i)
		}
	}
	v.up, v.current = up, current
	if len(current) > 0 {
		up = current
	}
	slices.SortFunc(up, func(x, y webInstance) int { return strings.Compare(x.id, y.id) })
	next := newRoute(e.name, len(up))
	for k, i := range up {
		if i.retired || i.pool == nil {
			if i.retired { // rare: an instance routed to again
				b := &backend{}
				b.setText(i.id, i.addr, []byte(i.name), i.node)
				i.backend, i.retired = b, false
			}
			// Not yet in any route: no request sees it before the
			// route is stored.
			i.pool = v.poolFor(i.addr)
			m[i.id] = i
		}
		next.backends[k] = i.backend
	}
	clear(v.up[:cap(v.up)]) // keep no backend or strings alive from here
	clear(v.current[:cap(v.current)])
	old := e.route.Swap(next)
	v.retire(old, next)
}

// retire forgets the backends of old that next no longer has: they get no
// new requests, and the idle connections of an address no backend has
// any more are closed. Requests under way may finish on their
// connections, until the drain timeout.
func (v *view) retire(old, next *route) {
	if old == nil {
		return
	}
	for _, b := range old.backends {
		kept := false
		if next != nil {
			for _, nb := range next.backends {
				if nb == b {
					kept = true
					break
				}
			}
		}
		if !kept {
			// The instance's next route, if it is up again, gets a
			// new backend with a new hold on its address's pool.
			m := v.instances[old.app]
			if i, ok := m[b.id]; ok && i.backend == b {
				i.retired = true
				m[b.id] = i
			}
			v.release(b.addr, v.dead[b.node])
		}
	}
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

// follow keeps the routes in step with the state until ctx ends. It closes
// synced once the first complete table is in place.
func (r *Router) follow(ctx context.Context, synced chan<- struct{}) error {
	changes := make(chan change, 4096)
	for _, err := range []error{
		forward(ctx, r.st.Apps, changes),
		forward(ctx, r.st.Instances, changes),
		forward(ctx, r.st.Domains, changes),
		forward(ctx, r.st.Certs, changes),
		forward(ctx, r.st.Nodes, changes),
	} {
		if err != nil {
			return err
		}
	}
	v := newView(r.cfg.Domain)
	v.drain = r.cfg.DrainTimeout
	certs := &certView{parsed: map[string]*tls.Certificate{}, names: map[string]string{}}
	const buckets = 5
	loaded := 0
	b := &batch{apps: map[string]bool{}}
	idle := time.NewTicker(idleCheck)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			for _, p := range v.pools {
				p.pool.closeAll()
			}
			return nil
		case <-idle.C:
			now := time.Now()
			for _, p := range v.pools {
				p.pool.closeIdle(now)
			}
		case c := <-changes:
			// Take every change already queued, then update once.
		drain:
			for {
				switch {
				case c.synced:
					loaded++
				case c.bucket == skiff.BucketCerts:
					t := r.applyCert(certs, c)
					r.certs.Store(&t)
				case c.bucket == skiff.BucketNodes:
					v.apply(c, b) // heartbeats, mostly: not counted
				default:
					v.apply(c, b)
					routeChanges.Inc()
				}
				select {
				case c = <-changes:
				default:
					break drain
				}
			}
			if loaded < buckets {
				continue
			}
			if synced != nil {
				b.hosts = true // the first table
			}
			if t := v.update(b); t != nil {
				r.table.Store(t)
			}
			for app := range b.apps {
				if e := v.entries[app]; e != nil {
					r.wantStatic(ctx, e, v.apps[app])
				}
			}
			clear(b.apps)
			b.hosts = false
			if synced != nil {
				close(synced)
				synced = nil
			}
		}
	}
}
