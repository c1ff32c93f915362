package e2e

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// burnPy burns a second of CPU, idles past the agent's 10 s sample,
// burns another second, says how much its own getrusage counted, then
// idles: its usage is summed from a periodic sample and the one taken at
// its end.
const burnPy = `import resource, time
def burn(s):
    t0 = time.process_time()
    while time.process_time() - t0 < s:
        pass
burn(1.0)
time.sleep(11)
burn(1.0)
r = resource.getrusage(resource.RUSAGE_SELF)
print("burned %.3f s" % (r.ru_utime + r.ru_stime), flush=True)
time.sleep(100000)
`

// TestUsageMatchesCgroups: an app's processes are billed what their
// cgroups measured, within milliseconds, at the price the server was
// started with: a worker that burns a known amount of CPU, counted from a
// periodic sample and the last one taken at its end, and a web process;
// and the bytes its router sent, request by request.
func TestUsageMatchesCgroups(t *testing.T) {
	s := startServer(t, "--price-cpu-hour", "3.6", "--price-instance-hour", "1x=0.5", "--price-bandwidth-gb", "0.1", "--currency", "EUR")
	s.ok("apps", "create", "burner")
	dir := app(t, "pyapp", map[string]string{"Procfile": "web: python3 server.py\nburn: python3 burn.py\n", "burn.py": burnPy,
		"app.json": `{"formation": {"web": {"quantity": 1}, "burn": {"quantity": 0}}}`})
	s.ok("deploy", dir, "-a", "burner")
	started := time.Now()
	s.ok("scale", "-a", "burner", "burn=1")
	requests, body := 0, 0
	eventually(t, 40*time.Second, "the worker to burn its CPU", func() bool {
		code, b, err := s.get(host("burner"), "/")
		if err != nil || code != 200 {
			t.Fatalf("GET /: %d %v", code, err)
		}
		requests, body = requests+1, body+len(b)
		return strings.Contains(s.ok("logs", "-a", "burner", "-n", "100", "--ps", "burn.1"), "burned ")
	})
	var ps []skiff.ProcessView
	if err := json.Unmarshal([]byte(s.ok("ps", "-a", "burner", "--json")), &ps); err != nil || len(ps) != 2 {
		t.Fatalf("ps: %v %+v", err, ps)
	}
	measured := 0.0
	for _, p := range ps {
		// A periodic sample was taken while it ran (ps shows its reading).
		if u := p.Usage; u == nil || p.Type == "burn" && u.CPUSeconds < 0.9 {
			t.Fatalf("no sample of %s while it ran: %+v", p.Name, u)
		}
		cpu, where := cgroupCPU(t, p.ID)
		t.Logf("%s: cgroup %s: %.6f CPU seconds", p.Name, where, cpu)
		measured += cpu
	}
	if measured < 2 || measured > 5 {
		t.Fatalf("the cgroups measured %.3f CPU seconds for a 2 s burn", measured)
	}

	// Stopped between two samples: the last one is taken at each end.
	s.ok("scale", "-a", "burner", "web=0", "burn=0")
	eventually(t, 20*time.Second, "the processes to stop", func() bool {
		return strings.TrimSpace(s.ok("ps", "-a", "burner", "--json")) == "[]"
	})
	ran := 2 * time.Since(started).Hours()

	// The router publishes what it served every 10 s.
	eventually(t, 15*time.Second, "the router's requests to be counted", func() bool {
		var rep skiff.UsageReport
		return json.Unmarshal([]byte(s.ok("usage", "-a", "burner", "--json")), &rep) == nil && len(rep.Apps) == 1 &&
			rep.Apps[0].Usage.Requests >= int64(requests)
	})
	var rep skiff.UsageReport
	out := s.ok("usage", "-a", "burner", "--json")
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Apps) != 1 {
		t.Fatalf("usage --json: %v\n%s", err, out)
	}
	u := rep.Apps[0].Usage
	t.Logf("billed %.6f CPU seconds, %.6f instance-hours, %d requests, %d bytes (%d requests, %d bytes of bodies sent)",
		u.CPUSeconds, u.InstanceHours["1x"], u.Requests, u.BandwidthBytes, requests, body)
	if u.Requests != int64(requests) || u.BandwidthBytes < int64(body) || u.BandwidthBytes > int64(body+requests*400) {
		t.Errorf("billed %d requests, %d bytes for %d requests of %d bytes of bodies", u.Requests, u.BandwidthBytes, requests, body)
	}
	// What the processes used after the readings above: idling, and
	// exiting on SIGTERM.
	if d := u.CPUSeconds - measured; d < 0 || d > 0.03 {
		t.Errorf("billed %.6f CPU seconds; the cgroup measured %.6f", u.CPUSeconds, measured)
	}
	if ih := u.InstanceHours["1x"]; ih < 2*12.0/3600 || ih > ran {
		t.Errorf("billed %.6f instance-hours for two processes that ran at least 12 s and at most %.6f hours", ih, ran)
	}
	costs := map[string]float64{}
	for _, it := range rep.Apps[0].Items {
		costs[it.Item] = it.Cost
	}
	if want := u.CPUSeconds / 3600 * 3.6; math.Abs(costs[skiff.ItemCPU]-want) > 1e-12 {
		t.Errorf("CPU cost %v, want %v", costs[skiff.ItemCPU], want)
	}
	if want := u.InstanceHours["1x"] * 0.5; math.Abs(costs[skiff.ItemInstances("1x")]-want) > 1e-12 {
		t.Errorf("instance cost %v, want %v", costs[skiff.ItemInstances("1x")], want)
	}
	if want := float64(u.BandwidthBytes) / (1 << 30) * 0.1; math.Abs(costs[skiff.ItemBandwidth]-want) > 1e-15 {
		t.Errorf("bandwidth cost %v, want %v", costs[skiff.ItemBandwidth], want)
	}
	if rep.Currency != "EUR" || math.Abs(rep.Total-costs[skiff.ItemCPU]-costs[skiff.ItemInstances("1x")]-costs[skiff.ItemBandwidth]) > 1e-12 {
		t.Errorf("report: %s %v, items %v", rep.Currency, rep.Total, costs)
	}

	// The same as CSV, and as a table for people.
	rows, err := csv.NewReader(strings.NewReader(s.ok("usage", "--csv"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rows {
		if r[1] == "burner" && r[2] == skiff.ItemCPU {
			q, _ := strconv.ParseFloat(r[4], 64)
			found = math.Abs(q*3600-u.CPUSeconds) < 1e-9 && r[6] == "3.6" && r[8] == "EUR"
		}
	}
	if !found {
		t.Errorf("usage --csv:\n%v", rows)
	}
	table := s.ok("usage", "-a", "burner")
	for _, want := range []string{"burner", "CPU time", "CPU-hour", "1x processes", "TOTAL", "EUR"} {
		if !strings.Contains(table, want) {
			t.Errorf("usage table lacks %q:\n%s", want, table)
		}
	}
	s.fails(2, "--csv and --json", "usage", "--csv", "--json")
	s.fails(2, "is not a month", "usage", "--month", "11/2026")
}

// cgroupCPU reads the CPU time an instance's cgroup has counted, on
// whichever cgroup version the host has.
func cgroupCPU(t *testing.T, id string) (float64, string) {
	t.Helper()
	for _, p := range []string{"/sys/fs/cgroup/skiff/" + id + "/cpu.stat", "/sys/fs/cgroup/unified/skiff/" + id + "/cpu.stat"} {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
				us, _ := strconv.ParseFloat(v, 64)
				if us > 0 {
					return us / 1e6, p
				}
			}
		}
	}
	for _, p := range []string{"/sys/fs/cgroup/cpuacct/skiff/" + id + "/cpuacct.usage", "/sys/fs/cgroup/cpu,cpuacct/skiff/" + id + "/cpuacct.usage"} {
		if data, err := os.ReadFile(p); err == nil {
			ns, _ := strconv.ParseFloat(strings.TrimSpace(string(data)), 64)
			return ns / 1e9, p
		}
	}
	t.Fatalf("no cgroup of instance %s under /sys/fs/cgroup", id)
	return 0, ""
}
