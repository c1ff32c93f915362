package agent

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// TestHeartbeatReportsDisk: the node's record has the size and use of its
// data directory's filesystem, for the disk alert.
func TestHeartbeatReportsDisk(t *testing.T) {
	h := newHarness(t, Config{})
	var n skiff.Node
	eventually(t, 10*time.Second, func() bool {
		n, _, _ = h.st.Nodes.Get(context.Background(), h.ag.cfg.Node)
		return n.DiskTotal > 0
	})
	var st unix.Statfs_t
	if err := unix.Statfs(h.ag.cfg.Dir, &st); err != nil {
		t.Fatal(err)
	}
	if total := int64(st.Blocks) * int64(st.Bsize); n.DiskTotal != total || n.DiskUsed <= 0 || n.DiskUsed > total {
		t.Fatalf("node reports %d of %d bytes used; the filesystem has %d", n.DiskUsed, n.DiskTotal, total)
	}
}
