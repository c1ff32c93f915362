package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-paas/skiff/internal/secret"
)

// TestJoinToken: a node started with a cluster address makes a cluster;
// its join token gives a fresh node the cluster's secrets and the
// platform's keys; a node of another platform or cluster is refused.
func TestJoinToken(t *testing.T) {
	first := Config{DataDir: t.TempDir(), NodeName: "n1", BusAddr: "0.0.0.0:4222", ClusterAddr: ":6222", AgentAddr: "10.0.0.1"}
	if _, err := JoinToken(first.DataDir); err == nil || !strings.Contains(err.Error(), "in no cluster") {
		t.Fatalf("join token of a node in no cluster: %v", err)
	}
	info, ok, err := prepareCluster(first)
	if err != nil || !ok || info.RoutePassword == "" || len(info.CACert) == 0 {
		t.Fatalf("new cluster: %+v %v %v", info, ok, err)
	}
	if want := []string{"10.0.0.1:6222"}; strings.Join(info.Routes, ",") != strings.Join(want, ",") ||
		strings.Join(info.Clients, ",") != "nats://10.0.0.1:4222" {
		t.Fatalf("advertised addresses: %v %v", info.Routes, info.Clients)
	}
	busKey, _ := secret.LoadOrCreateKey(filepath.Join(first.DataDir, "bus.key"))
	secretKey, _ := secret.LoadOrCreateKey(filepath.Join(first.DataDir, "secret.key"))
	token, err := JoinToken(first.DataDir)
	if err != nil || !strings.HasPrefix(token, tokenPrefix) {
		t.Fatalf("join token: %q %v", token, err)
	}

	second := Config{DataDir: t.TempDir(), NodeName: "n2", BusAddr: "10.0.0.2:4222", ClusterAddr: "10.0.0.2:6222", JoinToken: token}
	joined, ok, err := prepareCluster(second)
	if err != nil || !ok || joined.RoutePassword != info.RoutePassword {
		t.Fatalf("join: %+v %v %v", joined, ok, err)
	}
	if strings.Join(joined.Routes, ",") != "10.0.0.1:6222,10.0.0.2:6222" {
		t.Errorf("routes of the joined node: %v", joined.Routes)
	}
	for name, want := range map[string][]byte{"bus.key": busKey, "secret.key": secretKey} {
		got, err := secret.LoadOrCreateKey(filepath.Join(second.DataDir, name))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s not taken from the token", name)
		}
	}
	// Started again with the token, the node is the same.
	if _, _, err := prepareCluster(second); err != nil {
		t.Errorf("restart with the token: %v", err)
	}

	// A data directory of another platform is not taken over.
	other := Config{DataDir: t.TempDir(), NodeName: "n3", JoinToken: token}
	os.WriteFile(filepath.Join(other.DataDir, "secret.key"), []byte(strings.Repeat("ab", 32)+"\n"), 0o600)
	if _, _, err := prepareCluster(other); err == nil || !strings.Contains(err.Error(), "another platform") {
		t.Errorf("join with another platform's key: %v", err)
	}
	// Nor one of another cluster.
	third := Config{DataDir: t.TempDir(), NodeName: "n4", ClusterAddr: "127.0.0.1:6222"}
	if _, _, err := prepareCluster(third); err != nil {
		t.Fatal(err)
	}
	third.JoinToken = token
	if _, _, err := prepareCluster(third); err == nil || !strings.Contains(err.Error(), "belongs to cluster") {
		t.Errorf("join from another cluster: %v", err)
	}
	// A damaged token says what to do.
	if _, _, err := prepareCluster(Config{DataDir: t.TempDir(), JoinToken: token[:len(token)-10]}); err == nil ||
		!strings.Contains(err.Error(), "copy it whole") {
		t.Errorf("damaged token: %v", err)
	}
}
