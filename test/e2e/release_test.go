package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestReleasePhase: the Procfile's release command runs once per release
// (a deploy, a config change), before the release's processes start and
// with its config; when it fails, the release fails and the previous one
// keeps serving without a failed request.
func TestReleasePhase(t *testing.T) {
	s := startServer(t, "--boot-timeout", "15s")
	s.ok("apps", "create", "phased")
	procfile := "web: python3 server.py\nrelease: echo \"migrating to $SKIFF_RELEASE\"; test -z \"$FAIL_RELEASE\"\n"
	out := s.ok("deploy", app(t, "pyapp", map[string]string{"Procfile": procfile}), "-a", "phased")
	if !strings.Contains(out, "Release phase -> echo") {
		t.Errorf("the build does not announce the release phase:\n%s", out)
	}
	s.waitFor(host("phased"), "release=v1")
	eventually(t, 10*time.Second, "the release command's output in the logs", func() bool {
		return strings.Contains(s.ok("logs", "-a", "phased", "-n", "200"), "app[release.1]: migrating to v1")
	})

	stop := s.load(1, host("phased"), "release=v1")
	s.ok("config", "set", "-a", "phased", "FAIL_RELEASE=1")
	var rels []struct {
		Version      int
		Status       string
		StatusReason string `json:"status_reason"`
	}
	eventually(t, 30*time.Second, "v2 to fail", func() bool {
		json.Unmarshal([]byte(s.ok("releases", "-a", "phased", "--json")), &rels)
		return len(rels) == 2 && rels[0].Status == "failed"
	})
	if !strings.Contains(rels[0].StatusReason, "the release command") || !strings.Contains(rels[0].StatusReason, "exit status 1") {
		t.Errorf("v2 failed for %q", rels[0].StatusReason)
	}
	if _, failed, first := stop(); failed != 0 {
		t.Fatalf("%d requests failed while the release command failed; first: %s", failed, first)
	}
	if ps := s.ok("ps", "-a", "phased"); strings.Contains(ps, "release.1") || !strings.Contains(ps, "v1") {
		t.Errorf("ps after the failed release phase:\n%s", ps)
	}

	s.ok("config", "unset", "-a", "phased", "FAIL_RELEASE")
	s.waitFor(host("phased"), "release=v3")
	if logs := s.ok("logs", "-a", "phased", "-n", "300"); !strings.Contains(logs, "migrating to v3") || !strings.Contains(logs, "Release command of v3 succeeded") {
		t.Errorf("logs lack v3's release phase:\n%s", logs)
	}
}
