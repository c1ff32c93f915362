package agent

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/isolate"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

func isolated(t *testing.T) Driver {
	t.Helper()
	ds := drivers()
	if len(ds) < 2 {
		t.Skip("the isolated driver needs root and cgroups")
	}
	return ds[1]
}

// TestOutOfMemory: an instance over its memory limit is killed, said to
// be out of memory in its logs and record, and restarted.
func TestOutOfMemory(t *testing.T) {
	h := newHarness(t, Config{Driver: isolated(t), Limits: isolate.Limits{Memory: 64 << 20, PIDs: 64}})
	h.assign("m1", "worker", "echo allocating; head -c 1G /dev/zero | tail -n 1")
	var inst skiff.Instance
	eventually(t, 20*time.Second, func() bool { inst, _ = h.instance("m1"); return inst.Restarts >= 2 })
	if !strings.HasPrefix(inst.ExitReason, "out of memory: over its 64 MiB limit") {
		t.Errorf("exit reason %q", inst.ExitReason)
	}
	if logs := h.logs("worker.1"); !strings.Contains(logs, "Process exited: out of memory") {
		t.Errorf("logs:\n%s", logs)
	}
	// Told apart from other crashes: an instance.oom event, for webhooks.
	var oom []skiff.Event
	h.st.ReadEvents(context.Background(), store.EventQuery{App: inst.App}, func(ev skiff.Event) error {
		if ev.Type == skiff.EventInstanceOOM {
			oom = append(oom, ev)
		}
		return nil
	})
	if len(oom) == 0 || oom[0].Instance != "worker.1" || !strings.Contains(oom[0].Message, "over its 64 MiB memory limit") {
		t.Errorf("instance.oom events: %+v", oom)
	}
}

// TestUsageIsMeasured: an instance's CPU time and memory show in its
// record and add up in the USAGE stream per hour.
func TestUsageIsMeasured(t *testing.T) {
	h := newHarness(t, Config{Driver: isolated(t), UsageInterval: 100 * time.Millisecond})
	// About half a second of CPU (a fixed amount of work, which a loaded
	// machine cannot shorten), then idle.
	h.assign("u1", "worker", `i=0; while [ $i -lt 500000 ]; do i=$((i+1)); done; exec sleep 100`)
	var inst skiff.Instance
	eventually(t, 20*time.Second, func() bool {
		inst, _ = h.instance("u1")
		return inst.Usage != nil && inst.Usage.CPUSeconds >= 0.3
	})
	if inst.Usage.MemoryPeak <= 0 || inst.Usage.MemoryLimit != 512<<20 {
		t.Errorf("usage %+v", *inst.Usage)
	}
	// The samples in the USAGE stream, which the metrics role meters.
	var cpu, instanceHours float64
	eventually(t, 5*time.Second, func() bool {
		cpu, instanceHours = 0, 0
		err := h.st.Scan(context.Background(), skiff.StreamUsage, []string{skiff.UsageSubject("app", "*")}, time.Now().Add(-time.Hour),
			func(_ string, data []byte, _ time.Time) bool {
				var u skiff.UsageSample
				if json.Unmarshal(data, &u) == nil {
					cpu += u.CPUSeconds
					instanceHours += u.Interval / 3600
				}
				return true
			})
		return err == nil && cpu >= 0.3
	})
	if instanceHours <= 0 || instanceHours > 0.01 {
		t.Errorf("instance hours %f for a few seconds", instanceHours)
	}
}

// TestProcessSize: a 2x process gets twice the memory of the 1x size: it
// holds what would kill a 1x one.
func TestProcessSize(t *testing.T) {
	h := newHarness(t, Config{Driver: isolated(t), Limits: isolate.Limits{Memory: 64 << 20, CPUWeight: 100, PIDs: 64},
		UsageInterval: 100 * time.Millisecond})
	a := skiff.Assignment{ID: "big", App: "app", Proc: "worker", Index: 1, Release: 1, Node: "n1", Image: h.img, Size: "2x",
		Command: `python3 -c 'b = b"x" * (90 << 20); print("holding", len(b) >> 20, "MiB", flush=True); import time; time.sleep(100)'`}
	h.st.Assignments.Put(context.Background(), a.Key(), a)
	var inst skiff.Instance
	eventually(t, 20*time.Second, func() bool {
		inst, _ = h.instance("big")
		return inst.Usage != nil && inst.Usage.Memory > 90<<20
	})
	if inst.Usage.MemoryLimit != 128<<20 || inst.Restarts != 0 {
		t.Errorf("a 2x process: %+v, %d restarts (%s)", *inst.Usage, inst.Restarts, inst.ExitReason)
	}
	if logs := h.logs("worker.1"); !strings.Contains(logs, "holding 90 MiB") {
		t.Errorf("logs:\n%s", logs)
	}
}
