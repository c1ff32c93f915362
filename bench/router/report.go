package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// freeportCmd prints n free loopback ports, one a line. Another process
// could take one before nginx or HAProxy binds it; on a benchmark machine
// that is rare enough, and the proxy then fails to start loudly.
func freeportCmd(args []string) error {
	fs := flag.NewFlagSet("freeport", flag.ExitOnError)
	n := fs.Int("n", 1, "ports")
	fs.Parse(args)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < *n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

// kv is a file of key=value lines.
type kv map[string]string

func parseKV(r io.Reader) (kv, error) {
	m := kv{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok {
			m[k] = v
		}
	}
	return m, sc.Err()
}

func readKV(path string) (kv, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseKV(f)
}

func (m kv) num(key string) float64 {
	f, _ := strconv.ParseFloat(m[key], 64)
	return f
}

// run is one measurement of one target: from wrk's output or from load's.
type run struct {
	RPS          float64
	P50, P99     float64 // milliseconds
	Non2xx, Errs int64
	Requests     int64
	// All counts the requests of the warm-up too, where CPU covers it.
	All int64
	// CPU is the CPU ticks each of the benchmark's processes used during
	// the run, by name (backend, bus, router, nginx, haproxy, churn), as
	// run.sh appends them in cpu_NAME= lines.
	CPU map[string]float64
}

// procOf is the process that does a target's work.
func procOf(target string) string {
	if target == "direct" {
		return "backend"
	}
	return target
}

// usPerRequest is the CPU time target's process spent per request, in
// microseconds, or 0 where it was not recorded.
func (r run) usPerRequest(target string, clkTck float64) float64 {
	n := r.Requests
	if r.All > 0 {
		n = r.All
	}
	t, ok := r.CPU[procOf(target)]
	if !ok || n == 0 || clkTck == 0 {
		return 0
	}
	return t / clkTck / float64(n) * 1e6
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkPct     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s|m)\s*$`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSockets = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkTotal   = regexp.MustCompile(`(\d+) requests in`)
)

// parseWrk reads the output of wrk --latency.
func parseWrk(text string) (run, error) {
	var r run
	m := wrkRPS.FindStringSubmatch(text)
	if m == nil {
		return r, errors.New("no Requests/sec in wrk's output")
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	for _, m := range wrkPct.FindAllStringSubmatch(text, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		v *= map[string]float64{"us": 1e-3, "ms": 1, "s": 1e3, "m": 60e3}[m[3]]
		if m[1] == "50" {
			r.P50 = v
		} else {
			r.P99 = v
		}
	}
	if m := wrkNon2xx.FindStringSubmatch(text); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkSockets.FindStringSubmatch(text); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.Errs += n
		}
	}
	if m := wrkTotal.FindStringSubmatch(text); m != nil {
		r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return r, nil
}

// readRun reads a .wrk or a .load file.
func readRun(path string) (run, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return run{}, err
	}
	m, err := parseKV(strings.NewReader(string(data)))
	if err != nil {
		return run{}, err
	}
	var r run
	if strings.HasSuffix(path, ".wrk") {
		if r, err = parseWrk(string(data)); err != nil {
			return r, fmt.Errorf("%s: %w", path, err)
		}
	} else {
		r = run{RPS: m.num("rate"), P50: m.num("p50_us") / 1e3, P99: m.num("p99_us") / 1e3,
			Non2xx: int64(m.num("non2xx")), Errs: int64(m.num("errors")), Requests: int64(m.num("requests")), All: int64(m.num("all_requests"))}
	}
	r.CPU = map[string]float64{}
	for k := range m {
		if name, ok := strings.CutPrefix(k, "cpu_"); ok {
			r.CPU[name] = m.num(k)
		}
	}
	return r, nil
}

func (r run) line() string {
	s := fmt.Sprintf("%9.0f req/s  p50 %7.3f ms  p99 %7.3f ms", r.RPS, r.P50, r.P99)
	if r.Non2xx > 0 || r.Errs > 0 {
		s += fmt.Sprintf("  non-2xx %d  socket errors %d", r.Non2xx, r.Errs)
	}
	return s
}

// result is the medians of a target's rounds.
type result struct {
	run
	UsPerReq float64 // CPU µs per request of the target's process
	Rounds   int
}

// medians reads dir/TARGET.N.EXT for every round N and returns the median
// of each figure, and the sums of the error counts.
func medians(dir, target, ext string, clkTck float64) (result, error) {
	paths, _ := filepath.Glob(filepath.Join(dir, target+".*."+ext))
	if len(paths) == 0 {
		return result{}, fmt.Errorf("no %s results for %s in %s", ext, target, dir)
	}
	var rps, p50, p99, cpu []float64
	var m result
	for _, p := range paths {
		r, err := readRun(p)
		if err != nil {
			return result{}, err
		}
		rps, p50, p99 = append(rps, r.RPS), append(p50, r.P50), append(p99, r.P99)
		cpu = append(cpu, r.usPerRequest(target, clkTck))
		m.Non2xx += r.Non2xx
		m.Errs += r.Errs
	}
	m.RPS, m.P50, m.P99, m.UsPerReq, m.Rounds = median(rps), median(p50), median(p99), median(cpu), len(paths)
	return m, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func yesNo(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// reportCmd prints the summary of a run's results directory, or with
// -line the one-line figures of one result file.
func reportCmd(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	line := fs.String("line", "", "print the figures of this one .wrk or .load file")
	half := fs.Bool("nginx-half", false, "print half of nginx's median req/s with one host, the rate of the latency runs")
	fs.Parse(args)
	if *half && fs.NArg() == 1 {
		r, err := medians(filepath.Join(fs.Arg(0), "base"), "nginx", "wrk", 0)
		if err != nil {
			return err
		}
		fmt.Printf("%.0f\n", r.RPS/2)
		return nil
	}
	if *line != "" {
		r, err := readRun(*line)
		if err != nil {
			return err
		}
		fmt.Println(r.line())
		return nil
	}
	if fs.NArg() != 1 {
		return errors.New("usage: report RESULTS-DIR | report -line FILE")
	}
	return report(os.Stdout, fs.Arg(0))
}

var targetNames = map[string]string{"direct": "backend, direct", "nginx": "nginx", "haproxy": "HAProxy", "router": "Skiff router"}

func report(w io.Writer, dir string) error {
	meta, err := readKV(filepath.Join(dir, "meta"))
	if err != nil {
		return err
	}
	clk := meta.num("clk_tck")
	fmt.Fprintf(w, "Skiff router benchmark: %s cores, %s; nginx %s, HAProxy %s, wrk %s, %s\n",
		meta["cores"], meta["when"], meta["nginx"], meta["haproxy"], meta["wrk"], meta["go"])
	fmt.Fprintf(w, "wrk -t%s -c%s, %s s runs after %s s of warm-up, %s rounds interleaved; figures are medians over the rounds.\n",
		meta["threads"], meta["conns"], meta["duration"], meta["warmup"], meta["rounds"])
	fmt.Fprintln(w, "Load generator, proxies and backend share the machine: compare figures within one run only.")
	fmt.Fprintln(w, "CPU µs/req is the CPU time of the proxy's processes (the backend's, for direct) per request.")

	var goals []string
	goal := func(text string, ok bool) { goals = append(goals, fmt.Sprintf("  %-8s %s", yesNo(ok), text)) }

	// table prints the medians of targets' runs in dir/sub; the p99 over
	// the direct run's only at a fixed rate, where it means added latency.
	table := func(title, sub, ext string, targets []string) (map[string]result, error) {
		fixed := ext == "load"
		fmt.Fprintf(w, "\n%s\n", title)
		fmt.Fprintf(w, "  %-16s %9s %8s %8s", "", "req/s", "p50 ms", "p99 ms")
		if fixed {
			fmt.Fprintf(w, " %10s", "p99 added")
		}
		fmt.Fprintf(w, " %11s  %s\n", "CPU µs/req", "errors")
		res := map[string]result{}
		for _, t := range targets {
			r, err := medians(filepath.Join(dir, sub), t, ext, clk)
			if err != nil {
				return nil, err
			}
			res[t] = r
			fmt.Fprintf(w, "  %-16s %9.0f %8.3f %8.3f", targetNames[t], r.RPS, r.P50, r.P99)
			if fixed {
				added := ""
				if d, ok := res["direct"]; ok && t != "direct" {
					added = fmt.Sprintf("%.3f", r.P99-d.P99)
				}
				fmt.Fprintf(w, " %10s", added)
			}
			cpu := ""
			if r.UsPerReq > 0 {
				cpu = fmt.Sprintf("%.1f", r.UsPerReq)
			}
			fmt.Fprintf(w, " %11s  %d non-2xx, %d socket (%d runs)\n", cpu, r.Non2xx, r.Errs, r.Rounds)
		}
		return res, nil
	}

	if _, err := os.Stat(filepath.Join(dir, "base")); err == nil {
		base, err := table("Throughput, one host (nginx: upstream keepalive, access log off)", "base", "wrk", []string{"direct", "nginx", "haproxy", "router"})
		if err != nil {
			return err
		}
		rn, rh := base["router"].RPS/base["nginx"].RPS, base["router"].RPS/base["haproxy"].RPS
		fmt.Fprintf(w, "  router/nginx %.2fx   router/haproxy %.2fx   (CPU per request: router/nginx %.2fx)\n",
			rn, rh, base["router"].UsPerReq/base["nginx"].UsPerReq)
		goal(fmt.Sprintf("throughput ≥ 1.00x nginx, one host: %.2fx", rn), rn >= 1)
	}

	if _, err := os.Stat(filepath.Join(dir, "latency")); err == nil {
		res, err := table(fmt.Sprintf("Added latency at a fixed %s req/s (half of nginx's peak), %s connections, %s s per run",
			meta["latency_rate"], meta["conns"], meta["duration"]), "latency", "load", []string{"direct", "nginx", "router"})
		if err != nil {
			return err
		}
		ra, na := res["router"].P99-res["direct"].P99, res["nginx"].P99-res["direct"].P99
		goal(fmt.Sprintf("added p99 ≤ nginx's and < 1 ms: router %.3f ms, nginx %.3f ms", ra, na), ra <= na && ra < 1)
	}

	if _, err := os.Stat(filepath.Join(dir, "hosts")); err == nil {
		hosts, err := table(fmt.Sprintf("Throughput, %s hosts in the table (wrk cycles through %s of them, spread over it)", meta["hosts"], meta["hosts_active"]), "hosts", "wrk", []string{"nginx", "haproxy", "router"})
		if err != nil {
			return err
		}
		rn, rh := hosts["router"].RPS/hosts["nginx"].RPS, hosts["router"].RPS/hosts["haproxy"].RPS
		fmt.Fprintf(w, "  router/nginx %.2fx   router/haproxy %.2fx   (CPU per request: router/nginx %.2fx)\n",
			rn, rh, hosts["router"].UsPerReq/hosts["nginx"].UsPerReq)
		goal(fmt.Sprintf("throughput ≥ 0.95x nginx, %s hosts: %.2fx", meta["hosts"], rn), rn >= 0.95)
	}

	if c, err := readKV(filepath.Join(dir, "churn", "router.out")); err == nil {
		if err := churnReport(w, dir, meta, c, goal); err != nil {
			return err
		}
	}

	if s, err := readKV(filepath.Join(dir, "soak", "soak.out")); err == nil {
		fmt.Fprintf(w, "\nRouter process after %s route changes (as fast as the bus took them: %s s, %s/s), a steady %s req/s on %s hosts throughout\n",
			s["changes"], s["elapsed_s"], s["rate"], meta["soak_load_rate"], meta["hot_hosts"])
		fmt.Fprintf(w, "  %-12s %12s %12s %8s\n", "", "before", "after", "change")
		flat := true
		for _, f := range []struct{ key, name string }{{"goroutines", "goroutines"}, {"heap_alloc", "heap live"}, {"heap_inuse", "heap in use"}, {"rss", "RSS"}} {
			b, a := s.num("before_"+f.key), s.num("after_"+f.key)
			unit, div := "", 1.0
			if f.key != "goroutines" {
				unit, div = " MiB", 1<<20
			}
			change := (a - b) / b * 100
			fmt.Fprintf(w, "  %-12s %12s %12s %+7.1f%%\n", f.name, fmt.Sprintf("%.1f%s", b/div, unit), fmt.Sprintf("%.1f%s", a/div, unit), change)
			if f.key == "goroutines" || f.key == "rss" {
				flat = flat && change <= 5
			}
		}
		if s["trend"] != "" {
			fmt.Fprintf(w, "  on the way (taken while the changes ran, the router maybe behind them):\n")
			for _, point := range strings.Split(s["trend"], ",") {
				var n, g, heap, rss float64
				fmt.Sscanf(strings.ReplaceAll(point, ":", " "), "%f %f %f %f", &n, &g, &heap, &rss)
				fmt.Fprintf(w, "    after %8.0f changes: %3.0f goroutines, heap live %6.1f MiB, RSS %6.1f MiB\n", n, g, heap/(1<<20), rss/(1<<20))
			}
		}
		fmt.Fprintf(w, "  steady load meanwhile: %s requests, %s non-2xx, %s socket errors, p99 %s µs\n", s["load_requests"], s["load_non2xx"], s["load_errors"], s["load_p99_us"])
		fmt.Fprintf(w, "  a change live meanwhile: p50 %s ms, p99 %s ms over %s probes\n", s["live_p50_ms"], s["live_p99_ms"], s["probes"])
		goal(fmt.Sprintf("goroutines and RSS within 5%% after %s route changes", s["changes"]), flat)
	}

	fmt.Fprintln(w, "\nGoals")
	for _, g := range goals {
		fmt.Fprintln(w, g)
	}
	return nil
}

// churnReport prints the churn scenario: the router without and with the
// churn, and nginx, which ignores the changes, as the control that shows
// what the bus and the churn driver cost the machine.
func churnReport(w io.Writer, dir string, meta, c kv, goal func(string, bool)) error {
	clk := meta.num("clk_tck")
	runs := map[string]run{}
	for _, name := range []string{"router.no", "router", "nginx.no", "nginx"} {
		r, err := readRun(filepath.Join(dir, "churn", name+".wrk"))
		if err != nil && !strings.HasPrefix(name, "nginx") {
			return err
		}
		if err == nil {
			runs[name] = r
		}
	}
	fmt.Fprintf(w, "\nChurn: %s backend changes/s asked over %s hosts / %s backends, wrk on %s of the hosts\n",
		meta["churn_rate"], meta["hosts"], meta["backends"], meta["hot_hosts"])
	fmt.Fprintf(w, "  %-28s %9s %8s %8s %12s %s\n", "", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "errors")
	rows := []struct{ key, label, proc, secs string }{
		{"router.no", "router, without churn", "router", "churn_seconds"},
		{"router", "router, with churn", "router", "churn_seconds"},
		{"nginx.no", "control: nginx, without", "nginx", "control_seconds"},
		{"nginx", "control: nginx, with churn", "nginx", "control_seconds"},
	}
	for _, row := range rows {
		r, ok := runs[row.key]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "  %-28s %9.0f %8.3f %8.3f %12.1f %d non-2xx, %d socket (%s s)\n",
			row.label, r.RPS, r.P50, r.P99, r.usPerRequest(row.proc, clk), r.Non2xx, r.Errs, meta[row.secs])
	}
	ratio := runs["router"].RPS / runs["router.no"].RPS
	fmt.Fprintf(w, "  router with/without churn %.2fx; changes made %s (%s/s, %s failed)\n", ratio, c["changes"], c["rate"], c["failed_changes"])
	control, normalized := 0.0, ratio
	if n, ok := runs["nginx"]; ok {
		control = n.RPS / runs["nginx.no"].RPS
		normalized = ratio / control
		fmt.Fprintf(w, "  nginx with/without the same churn %.2fx: the bus and the churn driver's share of the machine;\n", control)
		fmt.Fprintf(w, "  the router's ratio against it %.2fx\n", normalized)
	}
	cores := func(r run, name, secs string) string {
		if t, ok := r.CPU[name]; ok {
			return fmt.Sprintf("%.2f", t/clk/meta.num(secs))
		}
		return "-"
	}
	driver := "-"
	if c.num("elapsed_s") > 0 {
		driver = fmt.Sprintf("%.2f", c.num("cpu_s")/c.num("elapsed_s"))
	}
	no, with := runs["router.no"], runs["router"]
	fmt.Fprintf(w, "  cores busy, router without churn: router %s, backend %s, bus %s\n",
		cores(no, "router", "churn_seconds"), cores(no, "backend", "churn_seconds"), cores(no, "bus", "churn_seconds"))
	fmt.Fprintf(w, "  cores busy, router with churn:    router %s, backend %s, bus %s, churn driver %s\n",
		cores(with, "router", "churn_seconds"), cores(with, "backend", "churn_seconds"), cores(with, "bus", "churn_seconds"), driver)
	fmt.Fprintf(w, "  a change live (new backend gets traffic): p50 %s ms, p99 %s ms, max %s ms over %s probes (%s timed out)\n",
		c["live_p50_ms"], c["live_p99_ms"], c["live_max_ms"], c["probes"], c["probe_timeouts"])
	fmt.Fprintf(w, "  a removal live (old backend gets none):   p50 %s ms, p99 %s ms, max %s ms\n", c["gone_p50_ms"], c["gone_p99_ms"], c["gone_max_ms"])
	fmt.Fprintf(w, "  the router was %s ms behind the changes when they stopped\n", c["catchup_ms"])
	goal(fmt.Sprintf("churn: no non-2xx, no socket errors: %d non-2xx, %d socket", with.Non2xx, with.Errs), with.Non2xx == 0 && with.Errs == 0)
	if control > 0 {
		goal(fmt.Sprintf("churn: throughput ≥ 0.95x no churn: %.2fx, %.2fx against nginx's %.2fx under the same churn", ratio, normalized, control), normalized >= 0.95)
	} else {
		goal(fmt.Sprintf("churn: throughput ≥ 0.95x no churn: %.2fx (no control run)", ratio), ratio >= 0.95)
	}
	goal(fmt.Sprintf("churn: %s changes/s sustained: %s/s", meta["churn_rate"], c["rate"]), c.num("rate") >= 0.98*meta.num("churn_rate"))
	goal(fmt.Sprintf("churn: a change live within 100 ms (p99): %s ms", c["live_p99_ms"]), c.num("probe_timeouts") == 0 && c.num("live_p99_ms") <= 100)
	return nil
}
