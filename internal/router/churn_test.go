package router

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// churnView is a view of many apps with a few web instances each, and
// changes made the way the scheduler and the benchmark's churn make them:
// a new instance of an app is put, then its oldest one deleted.
type churnView struct {
	v     *view
	ids   [][]uint64 // each app's instances, oldest first
	addrs []string
	rng   *rand.Rand
	seq   uint64
}

func newChurnView(apps, perApp int) *churnView {
	cv := &churnView{v: newView("apps.test"), ids: make([][]uint64, apps),
		addrs: []string{"127.0.0.1:10001", "127.0.0.1:10002", "127.0.0.1:10003"}, rng: rand.New(rand.NewPCG(1, 2))}
	b := &batch{apps: map[string]bool{}}
	for a := range apps {
		name := "app" + strconv.Itoa(a)
		cv.v.apply(change{bucket: skiff.BucketApps, key: name, value: skiff.App{Name: name, Current: 1}}, b)
		cv.ids[a] = make([]uint64, perApp)
		for k := range perApp {
			cv.seq++
			cv.ids[a][k] = cv.seq
			cv.v.apply(cv.put(a, cv.seq), b)
		}
	}
	b.hosts = true
	cv.v.update(b)
	return cv
}

// put is the change of instance n of app a. Its strings are made
// afresh, as decoding a record from the bus makes them, and its key is
// part of a longer string, as a watched entry's key is part of its
// message's subject.
func (cv *churnView) put(a int, n uint64) change {
	app, id := "app"+strconv.Itoa(a), fmt.Sprintf("%010x", n)
	subject := "$KV.instances." + skiff.InstanceKey(app, id)
	return change{bucket: skiff.BucketInstances, key: subject[len("$KV.instances."):], value: skiff.Instance{
		ID: id, App: app, Proc: "web", Index: int(n % 8), Release: 1, Node: "node-" + strconv.Itoa(a%3),
		State: skiff.StateUp, Addr: cv.addrs[cv.rng.IntN(len(cv.addrs))],
	}}
}

// replace makes the changes that replace app a's oldest instance with a
// new one: the new one's put, then the old one's delete.
func (cv *churnView) replace(a int) (put, del change) {
	ids := cv.ids[a]
	old := ids[0]
	copy(ids, ids[1:])
	cv.seq++
	ids[len(ids)-1] = cv.seq
	key := "$KV.instances." + skiff.InstanceKey("app"+strconv.Itoa(a), fmt.Sprintf("%010x", old))
	return cv.put(a, cv.seq), change{bucket: skiff.BucketInstances, key: key[len("$KV.instances."):], deleted: true, value: skiff.Instance{}}
}

// churn applies n replacements of an instance of a random app, in
// batches of perBatch, as follow does.
func (cv *churnView) churn(n, perBatch int, b *batch) {
	for i := 0; i < n; i += perBatch {
		for j := 0; j < perBatch && i+j < n; j++ {
			put, del := cv.replace(cv.rng.IntN(len(cv.ids)))
			cv.v.apply(put, b)
			cv.v.apply(del, b)
		}
		cv.v.update(b)
		clear(b.apps)
	}
}

// forget deletes the view's apps, so that their metrics leave the
// process's registry.
func (cv *churnView) forget() {
	b := &batch{apps: map[string]bool{}}
	for a := range cv.ids {
		cv.v.apply(change{bucket: skiff.BucketApps, key: "app" + strconv.Itoa(a), deleted: true, value: skiff.App{}}, b)
	}
	cv.v.update(b)
}

// BenchmarkInstanceChanges measures one replacement of an instance (a put
// and a delete) in a table of 10,000 hosts and 30,000 backends, applied
// in batches of 16 as the watch delivers them. Run with -benchmem: the
// figures per op are what the change costs the router, without the
// decoding of the records. retained-B/op is how much of the heap in use
// (after a collection) each change adds.
func BenchmarkInstanceChanges(b *testing.B) {
	cv := newChurnView(10000, 3)
	defer cv.forget()
	bt := &batch{apps: map[string]bool{}}
	cv.churn(30000, 16, bt) // every backend replaced once: a steady state
	before := heapStats()
	b.ReportAllocs()
	b.ResetTimer()
	cv.churn(b.N, 16, bt)
	b.StopTimer()
	after := heapStats()
	b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/float64(b.N), "inuse-B/op")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(b.N), "live-B/op")
}

// heapStats are the heap's figures after a collection that returns free
// memory to the system, as the benchmark's router reports them.
func heapStats() runtime.MemStats {
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms
}

// TestInstanceChangeKeepsOneObject: replacing an instance (its put and
// the old one's delete, in one batch) allocates the new backend and the
// app's new route, and nothing else, so that a million changes leave the
// heap as they found it.
func TestInstanceChangeKeepsOneObject(t *testing.T) {
	cv := newChurnView(100, 3)
	defer cv.forget()
	const runs = 200
	type pair struct{ put, del change }
	pairs := make([]pair, runs+1) // AllocsPerRun runs once more to warm up
	for k := range pairs {
		pairs[k].put, pairs[k].del = cv.replace(k % 100)
	}
	b := &batch{apps: map[string]bool{}}
	k := 0
	if n := testing.AllocsPerRun(runs, func() {
		cv.v.apply(pairs[k].put, b)
		cv.v.apply(pairs[k].del, b)
		cv.v.update(b)
		clear(b.apps)
		k++
	}); n > 2 {
		t.Errorf("a change of instances allocates %.1f objects, want 2 (its backend and its app's route)", n)
	}
	for a := range 100 {
		bs := cv.v.entries["app"+strconv.Itoa(a)].route.Load().backends
		if len(bs) != 3 {
			t.Fatalf("app%d has %d backends, want 3", a, len(bs))
		}
		for _, be := range bs {
			if be.pool == nil || be.id == "" || be.addr == "" || be.name == "" {
				t.Fatalf("backend %+v", be)
			}
		}
	}
}

// TestBackendText: a backend's strings are its record's, whether they
// fit in its own object or not.
func TestBackendText(t *testing.T) {
	for _, id := range []string{"0123456789", strings.Repeat("x", 100)} {
		i := skiff.Instance{ID: id, Proc: "web", Index: 2, Node: "node-1", Addr: "10.0.0.1:12345"}
		b := newBackend(id, i)
		if b.id != id || b.addr != i.Addr || b.name != "web.2" || b.node != "node-1" || !b.same(id, i) {
			t.Errorf("backend of %q: %q %q %q %q", id, b.id, b.addr, b.name, b.node)
		}
	}
	if b := newBackend("1", skiff.Instance{Proc: "web", Addr: "h:1"}); b.node != "" || b.addr != "h:1" {
		t.Errorf("backend without a node: %q %q", b.addr, b.node)
	}
}

// TestInstanceRoutedAgain: an instance dropped from its app's route (its
// release is no longer current) and routed to again (the release is
// current again) gets a new backend with an open pool, not the retired
// one whose pool closed.
func TestInstanceRoutedAgain(t *testing.T) {
	v := newView("d")
	b := &batch{apps: map[string]bool{}}
	inst := func(id string, release int) change {
		return change{bucket: skiff.BucketInstances, key: "a." + id, value: skiff.Instance{ID: id, App: "a", Proc: "web", Release: release, State: skiff.StateUp, Addr: "h:" + id}}
	}
	app := func(current int) change {
		return change{bucket: skiff.BucketApps, key: "a", value: skiff.App{Name: "a", Current: current}}
	}
	for _, c := range []change{app(1), inst("1", 1), inst("2", 2)} {
		v.apply(c, b)
	}
	b.hosts = true
	tab := v.update(b)
	e := tab.lookup([]byte("a.d"))
	first := e.route.Load().backends[0]
	if first.id != "1" {
		t.Fatalf("routed to %s, want 1", first.id)
	}
	for _, current := range []int{2, 1} {
		b = &batch{apps: map[string]bool{}}
		v.apply(app(current), b)
		v.update(b)
	}
	again := e.route.Load().backends
	if len(again) != 1 || again[0].id != "1" || again[0] == first || again[0].pool == first.pool || again[0].pool.closed || !first.pool.closed {
		t.Fatalf("routed again to %+v (first %p, pool closed %v)", again, first, first.pool.closed)
	}
}
