package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestCron: app.json's cron entries fail the deploy when they are wrong;
// a right one runs as a one-off process at each slot, its output in
// skiff logs after the platform's line naming the run, and skiff cron
// shows it. The server's minutes of schedules last 2 s (a hidden flag),
// so that "* * * * *" runs every 2 s.
func TestCron(t *testing.T) {
	s := startServer(t, "--cron-minute", "2s")
	s.ok("apps", "create", "ticker")

	bad := app(t, "pyapp", map[string]string{"app.json": `{"cron": [{"command": "echo hi", "schedule": "*/5 * * *"}]}`})
	r := s.fails(1, `app.json cron: entry 1: schedule "*/5 * * *"`, "deploy", bad, "-a", "ticker")
	if !strings.Contains(r.err, "hint: write five fields") {
		t.Errorf("deploy with a bad schedule says:\n%s", r.err)
	}
	if out := s.ok("cron", "-a", "ticker"); !strings.Contains(out, "ticker has no scheduled jobs") {
		t.Errorf("cron before a deploy: %s", out)
	}

	good := app(t, "pyapp", map[string]string{"app.json": `{"cron": [{"command": "echo \"cron says $((6*7)) in $DYNO\"", "schedule": "* * * * *"}]}`})
	deployed := time.Now()
	s.ok("deploy", good, "-a", "ticker")

	// Two runs, each announced by the platform and then heard from in
	// its own process's lines.
	started := regexp.MustCompile(`Scheduled job 1 started: echo "cron says \$\(\(6\*7\)\) in \$DYNO" as (run\.\d{4})`)
	var logs string
	eventually(t, 40*time.Second, "two runs of the job in the logs", func() bool {
		logs = s.ok("logs", "-a", "ticker", "-n", "500")
		runs := started.FindAllStringSubmatch(logs, -1)
		heard := 0
		for _, m := range runs {
			if strings.Contains(logs, "cron says 42 in "+m[1]) {
				heard++
			}
		}
		return heard >= 2
	})

	out := s.ok("cron", "-a", "ticker")
	if !regexp.MustCompile(`1\s+\* \* \* \* \*\s+echo "cron says .*\s+\d{4}-\d\d-\d\d \d\d:\d\d \(in \d+[sm]\)\s+\d+s ago as run\.\d{4}`).MatchString(out) {
		t.Errorf("skiff cron:\n%s", out)
	}

	// No slot (2 s apart) started two processes: there are no more runs
	// than slots since the one under way when the deploy began, and no
	// run is announced twice.
	slots := int(time.Since(deployed)/(2*time.Second)) + 2
	runs := started.FindAllStringSubmatch(s.ok("logs", "-a", "ticker", "-n", "1000"), -1)
	if len(runs) > slots {
		t.Errorf("%d runs in %d slots:\n%s", len(runs), slots, logs)
	}
	seen := map[string]bool{}
	for _, m := range runs {
		if seen[m[1]] {
			t.Errorf("%s announced twice:\n%s", m[1], logs)
		}
		seen[m[1]] = true
	}
	if t.Failed() {
		t.Logf("skiff cron:\n%s\nskiff logs:\n%s", out, logs)
	}
}
