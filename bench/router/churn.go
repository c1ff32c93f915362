package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// churnConfig is a run of backend changes.
type churnConfig struct {
	Apps, Backends int           // the seeded apps app0…, and web instances each
	Addrs          []string      // backend addresses a new instance picks from
	Rate           float64       // changes per second; 0 for as fast as the bus takes them
	Duration       time.Duration // stop after this long, if set
	Changes        int64         // stop after this many changes, if set
	Router, Domain string        // where and under which domain to probe
	Debug          string        // the router's debug listener, for stats
	ProbeApps      int           // apps of the prober's own (one instance each)
	ProbeRate      float64       // probes per second
	Load           *loadConfig   // a steady load to keep on during the run, if set
	Settle         time.Duration // of steady load before each stats
	ReadyFile      string        // written when the changes start
	StatsEvery     int64         // changes between stats taken during the run, if set
}

// churnCmd changes backends at a fixed rate: each change puts a new web
// instance (a new ID, at a backend address picked at random) into a random
// slot of a random app, then deletes the instance it replaces. Putting
// first means the app never lacks a backend, so no request needs to fail.
//
// Meanwhile a prober makes a change now and then on apps of its own whose
// instances point at marker servers that answer with their address: it
// times how long the new backend takes to get traffic through the router,
// and how long the removed one takes to stop getting it.
func churnCmd(args []string) error {
	fs := flag.NewFlagSet("churn", flag.ExitOnError)
	info := fs.String("bus-file", "", "the bus's info file (required)")
	cfg := churnConfig{}
	fs.IntVar(&cfg.Apps, "apps", 10000, "seeded apps to change (app0 …)")
	fs.IntVar(&cfg.Backends, "backends", 3, "web instances per seeded app")
	addrs := fs.String("addrs", "", "comma-separated backend addresses (required)")
	fs.Float64Var(&cfg.Rate, "rate", 1000, "changes per second; 0 for as fast as possible")
	fs.DurationVar(&cfg.Duration, "d", 0, "duration")
	fs.Int64Var(&cfg.Changes, "changes", 0, "number of changes")
	fs.StringVar(&cfg.Router, "router", "", "router address (required)")
	fs.StringVar(&cfg.Domain, "domain", "bench.test", "platform domain")
	fs.StringVar(&cfg.Debug, "debug", "", "router debug address, for memory and goroutines before and after")
	fs.IntVar(&cfg.ProbeApps, "probe-apps", 10, "apps the prober changes")
	fs.Float64Var(&cfg.ProbeRate, "probe-rate", 20, "probes per second")
	loadHosts := fs.String("load-hosts-file", "", "if set, keep a steady load on these hosts through the router during the run")
	loadRate := fs.Float64("load-rate", 1000, "requests per second of the steady load")
	loadConns := fs.Int("load-c", 8, "connections of the steady load")
	fs.DurationVar(&cfg.Settle, "settle", 3*time.Second, "steady load before the stats, before and after the changes")
	fs.StringVar(&cfg.ReadyFile, "ready-file", "", "file to write when the changes start")
	fs.Int64Var(&cfg.StatsEvery, "stats-every", 0, "with -debug, also take the router's stats every this many changes")
	fs.Parse(args)
	if *info == "" || *addrs == "" || cfg.Router == "" || cfg.Duration <= 0 && cfg.Changes <= 0 {
		return errors.New("-bus-file, -addrs, -router and -d or -changes are required")
	}
	cfg.Addrs = strings.Split(*addrs, ",")
	if *loadHosts != "" {
		hosts, err := hostList("", *loadHosts)
		if err != nil {
			return err
		}
		cfg.Load = &loadConfig{Target: cfg.Router, Hosts: hosts, Rate: *loadRate, Conns: *loadConns}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	st, err := openStore(ctx, *info, "bench-churn")
	if err != nil {
		return err
	}
	defer st.NC.Close()
	out, err := churn(ctx, st, cfg)
	fmt.Print(out)
	return err
}

// churn runs cfg and returns its figures as key=value lines.
func churn(ctx context.Context, st *store.Store, cfg churnConfig) (string, error) {
	// The current instance in each slot of each app, from the state.
	slots := make([]skiff.Instance, cfg.Apps*cfg.Backends)
	byApp := map[string]int{}
	for i := 0; i < cfg.Apps; i++ {
		byApp[appName(i)] = i
	}
	list, err := st.Instances.List(ctx, "")
	if err != nil {
		return "", err
	}
	fill := make([]int, cfg.Apps)
	for _, c := range list {
		a, ok := byApp[c.Value.App]
		if !ok || fill[a] >= cfg.Backends {
			continue
		}
		slots[a*cfg.Backends+fill[a]] = c.Value
		fill[a]++
	}
	for a, n := range fill {
		if n != cfg.Backends {
			return "", fmt.Errorf("app %s has %d instances, want %d: seed it first", appName(a), n, cfg.Backends)
		}
	}

	p, err := newProber(ctx, st, cfg)
	if err != nil {
		return "", err
	}
	defer p.stop()

	var out strings.Builder
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	loadDone := make(chan loadResult, 1)
	if cfg.Load != nil {
		go func() { loadDone <- runLoad(loadCtx, *cfg.Load) }()
		time.Sleep(cfg.Settle)
	}
	if cfg.Debug != "" {
		s, err := fetchStats(cfg.Debug)
		if err != nil {
			return "", err
		}
		writeStats(&out, "before_", s)
	}

	if cfg.ReadyFile != "" {
		if err := writeFileAtomic(cfg.ReadyFile, "started\n"); err != nil {
			return "", err
		}
	}

	// Writers: a slot always goes to the same writer, so that no two
	// changes of one slot overlap.
	const writers = 64
	jobs := make([]chan int, writers)
	var changes atomic.Int64
	var failures atomic.Int64
	var errOnce sync.Once
	var firstErr error
	var wg sync.WaitGroup
	for w := range jobs {
		jobs[w] = make(chan int, 64)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for slot := range jobs[w] {
				old := slots[slot]
				n := webInstance(old.App, newInstanceID(), cfg.Addrs[rand.IntN(len(cfg.Addrs))])
				_, err := st.Instances.Put(ctx, n.Key(), n)
				if err == nil {
					err = st.Instances.Delete(ctx, old.Key())
				}
				if err != nil {
					failures.Add(1)
					errOnce.Do(func() { firstErr = err })
					continue
				}
				slots[slot] = n
				changes.Add(1)
			}
		}()
	}

	probeCtx, stopProbe := context.WithCancel(ctx)
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		p.run(probeCtx, cfg.ProbeRate)
	}()

	start := time.Now()
	var sent int64
	var trend []string // changes:goroutines:heap live:RSS, taken on the way
	nextStats := cfg.StatsEvery
	for ctx.Err() == nil {
		elapsed := time.Since(start)
		done := sent + p.changes.Load()
		if cfg.Debug != "" && nextStats > 0 && done >= nextStats {
			nextStats += cfg.StatsEvery
			if s, err := fetchStats(cfg.Debug); err == nil {
				trend = append(trend, fmt.Sprintf("%d:%d:%d:%d", done, s.Goroutines, s.HeapAlloc, s.RSS))
			}
		}
		if cfg.Duration > 0 && elapsed >= cfg.Duration || cfg.Changes > 0 && done >= cfg.Changes {
			break
		}
		if cfg.Rate > 0 && float64(done) >= elapsed.Seconds()*cfg.Rate {
			time.Sleep(time.Millisecond)
			continue
		}
		slot := rand.IntN(len(slots))
		jobs[slot%writers] <- slot
		sent++
	}
	for _, j := range jobs {
		close(j)
	}
	wg.Wait()
	stopProbe()
	<-probed
	elapsed := time.Since(start)
	// One more probe: once its change is live, every change before it is
	// too, as the router sees the instances in the order they were written.
	// Its delay is how far behind the changes the router was at the end.
	catchup, _, err := p.probe(ctx, 5*time.Minute)
	if err != nil {
		return out.String(), fmt.Errorf("last probe: %w", err)
	}
	total := changes.Load() + p.changes.Load()
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	fmt.Fprintf(&out, "changes=%d\nelapsed_s=%.1f\nrate=%.1f\nfailed_changes=%d\ncpu_s=%.2f\ncatchup_ms=%.1f\n", total, elapsed.Seconds(),
		float64(total)/elapsed.Seconds(), failures.Load(), cpu.Seconds(), float64(catchup)/1e6)
	if firstErr != nil {
		fmt.Fprintf(&out, "first_error=%q\n", firstErr.Error())
	}
	p.report(&out)
	if len(trend) > 0 {
		fmt.Fprintf(&out, "trend=%s\n", strings.Join(trend, ","))
	}
	if cfg.Debug != "" {
		if cfg.Load != nil {
			time.Sleep(cfg.Settle) // as long as before the first stats
		}
		s, err := fetchStats(cfg.Debug)
		if err != nil {
			return out.String(), err
		}
		writeStats(&out, "after_", s)
	}
	if cfg.Load != nil {
		stopLoad()
		r := <-loadDone
		fmt.Fprintf(&out, "load_requests=%d\nload_non2xx=%d\nload_errors=%d\nload_p99_us=%.1f\n",
			r.Requests, r.Non2xx, r.Errors, float64(r.percentile(99))/1e3)
	}
	return out.String(), nil
}

func writeStats(w io.Writer, prefix string, s stats) {
	fmt.Fprintf(w, "%sgoroutines=%d\n%sheap_alloc=%d\n%sheap_inuse=%d\n%srss=%d\n",
		prefix, s.Goroutines, prefix, s.HeapAlloc, prefix, s.HeapInuse, prefix, s.RSS)
}

// prober changes the backend of apps of its own, between two marker
// servers, and times each change through the router.
type prober struct {
	st      *store.Store
	cfg     churnConfig
	markers []string // addresses of the marker servers
	stopSrv context.CancelFunc
	client  *http.Client
	apps    []string
	current []skiff.Instance // of each probe app
	next    int              // the probe app of the next probe

	changes         atomic.Int64
	live, gone      []time.Duration
	timeouts, fails int
	firstErr        error
}

func newProber(ctx context.Context, st *store.Store, cfg churnConfig) (*prober, error) {
	srvCtx, stop := context.WithCancel(context.Background())
	markers, err := serve(srvCtx, 2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Context().Value(http.LocalAddrContextKey).(net.Addr).String())
	}))
	if err != nil {
		stop()
		return nil, err
	}
	p := &prober{st: st, cfg: cfg, markers: markers, stopSrv: stop,
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
	for i := 0; i < cfg.ProbeApps; i++ {
		app := fmt.Sprintf("probe%d", i)
		old, _ := st.Instances.List(ctx, app+".>")
		inst := webInstance(app, newInstanceID(), markers[0])
		if _, err := st.Instances.Put(ctx, inst.Key(), inst); err != nil {
			p.stop()
			return nil, err
		}
		for _, o := range old {
			if o.Key != inst.Key() {
				st.Instances.Delete(ctx, o.Key)
			}
		}
		if _, err := st.Apps.Put(ctx, app, skiff.App{Name: app, CreatedAt: time.Now(), Current: release}); err != nil {
			p.stop()
			return nil, err
		}
		p.apps = append(p.apps, app)
		p.current = append(p.current, inst)
	}
	// Wait until every probe app routes to its first marker.
	deadline := time.Now().Add(30 * time.Second)
	for _, app := range p.apps {
		for p.get(app) != markers[0] {
			if time.Now().After(deadline) {
				p.stop()
				return nil, fmt.Errorf("probe app %s not routed within 30s", app)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return p, nil
}

func (p *prober) stop() { p.stopSrv() }

// get asks the router for app and returns the body ("" on failure).
func (p *prober) get(app string) string {
	req, _ := http.NewRequest("GET", "http://"+p.cfg.Router+"/", nil)
	req.Host = skiff.AppHost(app, p.cfg.Domain)
	resp, err := p.client.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return ""
	}
	return string(b)
}

// run probes at rate until ctx ends.
func (p *prober) run(ctx context.Context, rate float64) {
	if rate <= 0 || len(p.apps) == 0 {
		return
	}
	every := time.Duration(float64(time.Second) / rate)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		live, gone, err := p.probe(ctx, 5*time.Second)
		switch {
		case errors.Is(err, errProbeTimeout):
			p.timeouts++
		case err != nil:
			p.fails++
			if p.firstErr == nil {
				p.firstErr = err
			}
		default:
			p.live = append(p.live, live)
			p.gone = append(p.gone, gone)
		}
	}
}

var errProbeTimeout = errors.New("probe: change not live in time")

// probe moves the next probe app to the other marker server, the way the
// churn does it: put a new instance, then delete the old one. live is the
// time from the start of the put to the first answer from the new marker;
// gone, from the start of the delete to the first of three answers in a
// row that no longer come from the old marker. Either taking longer than
// limit is errProbeTimeout.
func (p *prober) probe(ctx context.Context, limit time.Duration) (live, gone time.Duration, err error) {
	if len(p.apps) == 0 {
		return 0, 0, nil
	}
	i := p.next
	p.next = (p.next + 1) % len(p.apps)
	app, old := p.apps[i], p.current[i]
	to := p.markers[0]
	if old.Addr == to {
		to = p.markers[1]
	}
	n := webInstance(app, newInstanceID(), to)
	start := time.Now()
	if _, err := p.st.Instances.Put(ctx, n.Key(), n); err != nil {
		return 0, 0, err
	}
	p.current[i] = n
	p.changes.Add(1)
	for p.get(app) != to {
		if time.Since(start) > limit {
			return 0, 0, errProbeTimeout
		}
		time.Sleep(time.Millisecond)
	}
	live = time.Since(start)

	start = time.Now()
	if err := p.st.Instances.Delete(ctx, old.Key()); err != nil {
		return 0, 0, err
	}
	var firstNew time.Time
	for run := 0; run < 3; {
		got := p.get(app)
		switch {
		case got == old.Addr || got == "":
			run = 0
		case run == 0:
			firstNew = time.Now()
			run++
		default:
			run++
		}
		if time.Since(start) > limit {
			return 0, 0, errProbeTimeout
		}
		if run < 3 {
			time.Sleep(time.Millisecond)
		}
	}
	return live, firstNew.Sub(start), nil
}

func (p *prober) report(w io.Writer) {
	ms := func(ds []time.Duration, q float64) float64 {
		if len(ds) == 0 {
			return 0
		}
		s := slices.Clone(ds)
		slices.Sort(s)
		return float64(s[min(int(q/100*float64(len(s))), len(s)-1)]) / 1e6
	}
	fmt.Fprintf(w, "probes=%d\nprobe_timeouts=%d\nprobe_failures=%d\n", len(p.live), p.timeouts, p.fails)
	if p.firstErr != nil {
		fmt.Fprintf(w, "probe_first_error=%q\n", p.firstErr.Error())
	}
	fmt.Fprintf(w, "live_p50_ms=%.2f\nlive_p99_ms=%.2f\nlive_max_ms=%.2f\n", ms(p.live, 50), ms(p.live, 99), ms(p.live, 100))
	fmt.Fprintf(w, "gone_p50_ms=%.2f\ngone_p99_ms=%.2f\ngone_max_ms=%.2f\n", ms(p.gone, 50), ms(p.gone, 99), ms(p.gone, 100))
}
