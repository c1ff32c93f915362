package agent

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// TestUnmeasuredProcessesCountTheirTime: a process whose driver does not
// measure it (exec) still publishes samples of how long it ran, with its
// size, for instance-hours; and one more when it stops.
func TestUnmeasuredProcessesCountTheirTime(t *testing.T) {
	h := newHarness(t, Config{UsageInterval: 100 * time.Millisecond})
	a := skiff.Assignment{ID: "w1", App: "app", Proc: "worker", Index: 1, Release: 1, Node: "n1", Image: h.img, Size: "2x",
		Command: "exec sleep 100"}
	if _, err := h.st.Assignments.Put(context.Background(), a.Key(), a); err != nil {
		t.Fatal(err)
	}
	samples := func() []skiff.UsageSample {
		var out []skiff.UsageSample
		err := h.st.Scan(context.Background(), skiff.StreamUsage, []string{skiff.UsageSubject("app", "w1")}, time.Time{},
			func(_ string, data []byte, _ time.Time) bool {
				var s skiff.UsageSample
				if json.Unmarshal(data, &s) == nil {
					out = append(out, s)
				}
				return true
			})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	eventually(t, 10*time.Second, func() bool { return len(samples()) >= 3 })
	started := time.Now()
	if err := h.st.Assignments.Delete(context.Background(), a.Key()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { _, ok := h.instance("w1"); return !ok })
	all := samples()
	var ran float64
	for _, s := range all {
		if s.Size != "2x" || s.Interval <= 0 || s.CPUSeconds != 0 || s.Instance != "worker.1" {
			t.Errorf("sample %+v", s)
		}
		ran += s.Interval
	}
	// The last sample was taken when the process ended, after the delete.
	if last := all[len(all)-1]; last.Time.Before(started) || ran < 0.3 {
		t.Errorf("last sample at %v (delete at %v), %.3f s in all", last.Time, started, ran)
	}
}
