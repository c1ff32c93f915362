package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestClusterOfThreeBusNodes: a node starts a cluster, two more join it
// with its join token, and the state is made at three replicas once the
// third has joined; when the first node is killed, the others still have
// every acknowledged change and take new ones.
func TestClusterOfThreeBusNodes(t *testing.T) {
	home := t.TempDir()
	roles := []string{"bus,api", "bus,api", "bus"}
	var nodes []*server
	start := func(i int, extra ...string) *server {
		s := &server{t: t, data: t.TempDir(), home: home, apiAddr: freePort(t), rtrAddr: freePort(t), sshAddr: freePort(t),
			flags: append([]string{"--roles", roles[i], "--node-name", fmt.Sprintf("n%d", i+1),
				"--bus-addr", freePort(t), "--cluster-addr", freePort(t)}, extra...),
			wait: func() {}}
		os.Chmod(filepath.Dir(s.data), 0o711)
		s.start()
		t.Cleanup(func() {
			s.stop()
			if t.Failed() {
				t.Logf("n%d output:\n%s", i+1, tail(s.out.String(), 60))
			}
		})
		nodes = append(nodes, s)
		return s
	}
	n1 := start(0)
	eventually(t, 20*time.Second, "the cluster's secrets", func() bool {
		_, err := os.Stat(filepath.Join(n1.data, "cluster", "cluster.json"))
		return err == nil
	})
	token := strings.TrimSpace(n1.ok("server", "join-token", "--data", n1.data))
	n2 := start(1, "--join-token", token)
	start(2, "--join-token", token)
	n1.healthy()
	n2.healthy()
	admin, err := os.ReadFile(filepath.Join(n1.data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	n1.ok("login", "--api", "http://"+n1.apiAddr, "--token", strings.TrimSpace(string(admin)))
	n1.ok("apps", "create", "shop")
	n1.ok("config", "set", "-a", "shop", "A=1")

	syscall.Kill(-n1.cmd.Process.Pid, syscall.SIGKILL)
	<-n1.exited
	n1.cmd = nil
	killed := time.Now()
	// The same login, against the second node's API.
	var last result
	eventually(t, 30*time.Second, "a write after the first node's death", func() bool {
		last = n2.cli("login", "--api", "http://"+n2.apiAddr, "--token", strings.TrimSpace(string(admin)))
		if last.code == 0 {
			last = n2.cli("config", "set", "-a", "shop", "B=2")
		}
		if last.code != 0 {
			t.Log(strings.TrimSpace(last.err))
		}
		return last.code == 0
	})
	t.Logf("first acknowledged write %s after the node's death", time.Since(killed).Round(time.Millisecond))
	// Reads too, once the streams' new leaders answer.
	eventually(t, 30*time.Second, "the state after the first node's death", func() bool {
		cfg, apps := n2.cli("config", "-a", "shop"), n2.cli("apps")
		return cfg.code == 0 && strings.Contains(cfg.out, "A") && strings.Contains(cfg.out, "B") &&
			apps.code == 0 && strings.Contains(apps.out, "shop")
	})
}
