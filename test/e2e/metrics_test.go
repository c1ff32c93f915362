package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// TestMetrics: requests sent through the router, and the CPU and memory
// of the app's instance, show in skiff metrics; the process serves its
// Prometheus metrics at --metrics-addr without a token, each role's
// among them.
func TestMetrics(t *testing.T) {
	metricsAddr := freePort(t)
	s := startServer(t, "--metrics-addr", metricsAddr, "--metrics-grace", "3s")
	s.ok("apps", "create", "metered")
	s.ok("deploy", app(t, "pyapp", nil), "-a", "metered")
	s.waitFor(host("metered"), "release=")

	scrape := func() string {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("/metrics: %d %.200s", resp.StatusCode, body)
		}
		return string(body)
	}
	served := regexp.MustCompile(`skiff_router_requests_total\{app="metered",code="2xx"\} (\d+)`)
	stop := s.load(4, host("metered"), "release=")
	eventually(t, 20*time.Second, "the router to count 300 requests", func() bool {
		m := served.FindStringSubmatch(scrape())
		if m == nil {
			return false
		}
		n, _ := strconv.Atoi(m[1])
		return n >= 300
	})
	ok, failed, first := stop()
	if failed > 0 {
		t.Fatalf("%d of %d requests failed: %s", failed, ok+failed, first)
	}
	counted, _ := strconv.ParseInt(served.FindStringSubmatch(scrape())[1], 10, 64)

	// Every request the router answered, in the points once their steps
	// have closed; and the instance's CPU and memory.
	var series skiff.MetricsSeries
	var requests, withLatency int64
	var cpu, memory float64
	eventually(t, 40*time.Second, "points of every request", func() bool {
		out := s.ok("metrics", "-a", "metered", "--since", "10m", "--json")
		if err := json.Unmarshal([]byte(out), &series); err != nil {
			t.Fatalf("metrics --json: %v\n%s", err, out)
		}
		// Scraped again: a request under way when the load stopped may
		// have been answered, and counted, since.
		counted, _ = strconv.ParseInt(served.FindStringSubmatch(scrape())[1], 10, 64)
		requests, withLatency, cpu, memory = 0, 0, 0, 0
		for _, p := range series.Points {
			requests += p.Requests[1]
			withLatency += p.Latency.Count()
			cpu += p.CPUSeconds
			memory = max(memory, p.Memory.Max)
		}
		return requests >= counted && cpu > 0 && memory > 0
	})
	t.Logf("%d requests (%d answered by the load), %.3f CPU seconds, %.1f MiB at most, in %d points of %s",
		requests, ok, cpu, memory/(1<<20), len(series.Points), series.Resolution)
	if series.Resolution != "10s" || requests != counted || withLatency != requests {
		t.Errorf("%s points: %d requests, %d with a latency; the router counted %d", series.Resolution, requests, withLatency, counted)
	}
	if memory < 1<<20 || memory > 512<<20 {
		t.Errorf("memory %.0f bytes", memory)
	}
	for _, p := range series.Points {
		if p.Requests[1] > 0 && (p.P50 <= 0 || p.P99 < p.P50 || p.RPS <= 0) {
			t.Errorf("point at %s: %d requests, %.2f/s, p50 %g ms, p99 %g ms", p.Time, p.Requests[1], p.RPS, p.P50, p.P99)
		}
		if p.Memory.Seconds > 0 && p.Instances.Max < 1 {
			t.Errorf("point at %s: memory without instances: %+v", p.Time, p.Instances)
		}
	}

	table := s.ok("metrics", "-a", "metered", "--since", "10m")
	for _, want := range []string{"metered", "REQ/S", "2XX", "P99", "CPU", "MEMORY", "MiB"} {
		if !strings.Contains(table, want) {
			t.Errorf("metrics table lacks %q:\n%s", want, table)
		}
	}
	s.fails(2, "--step", "metrics", "-a", "metered", "--step", "5m")
	s.fails(2, "--since", "metrics", "-a", "metered", "--since", "yesterday")
	s.fails(3, "no app named", "metrics", "-a", "nosuch")

	// Each role's metrics, the bus's, and the Go runtime's.
	page := scrape()
	for _, want := range []string{
		`skiff_router_request_duration_seconds_count{app="metered"}`,
		`skiff_agent_instances{state="up"} 1`,
		`skiff_scheduler_placements_total`,
		`skiff_builder_build_duration_seconds_count{result="succeeded"} 1`,
		`skiff_bus_stream_messages{stream="METRICS_10S"}`,
		`skiff_metrics_points_written_total{resolution="10s"}`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
