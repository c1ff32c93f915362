package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/api"
	"github.com/skiff-paas/skiff/internal/api/apitest"
	"github.com/skiff-paas/skiff/internal/skiff"
)

func TestCronCommand(t *testing.T) {
	srv := apitest.Start(t, api.Config{Domain: "apps.test", RouterPort: 80, MaxUpload: 1 << 20})
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("SKIFF_API", "")
	t.Setenv("SKIFF_TOKEN", "")
	t.Setenv("SKIFF_APP", "")
	w := &world{t: t, url: srv.URL, token: srv.Token}
	w.login()
	w.ok("apps", "create", "shop")
	if out := w.ok("cron", "-a", "shop"); !strings.Contains(out, "shop has no scheduled jobs") || !strings.Contains(out, `"cron": [`) {
		t.Errorf("cron without jobs: %q", out)
	}
	w.fails(ExitNotFound, "no app named nope", "cron", "-a", "nope")

	ctx := context.Background()
	daily := skiff.CronJob{Schedule: "@daily", Command: "./backup.sh"}
	often := skiff.CronJob{Schedule: "*/5 * * * *", Command: "python manage.py clearsessions"}
	srv.Store.Releases.Put(ctx, skiff.ReleaseKey("shop", 1), skiff.Release{App: "shop", Version: 1, Cron: []skiff.CronJob{daily, often}})
	srv.Store.Apps.Update(ctx, "shop", func(a *skiff.App) error { a.Current = 1; return nil })
	srv.Store.Cron.Put(ctx, skiff.CronLastKey("shop", often.ID()), skiff.CronRun{App: "shop", Job: often.ID(), Index: 2,
		Slot: time.Now().Add(-3 * time.Minute), Name: "run.4321"})
	srv.Store.Cron.Put(ctx, skiff.CronLastKey("shop", daily.ID()), skiff.CronRun{App: "shop", Job: daily.ID(), Index: 1,
		Slot: time.Now().Add(-5 * time.Hour), Error: "no agent is running to take the run"})

	out := w.ok("cron", "-a", "shop")
	for _, re := range []string{
		`JOB\s+SCHEDULE\s+COMMAND\s+NEXT RUN \(UTC\)\s+LAST RUN`,
		`1\s+@daily\s+\./backup\.sh\s+\d{4}-\d\d-\d\d 00:00 \(in \d+[smh]\)\s+5h ago, did not start: no agent is running`,
		`2\s+\*/5 \* \* \* \*\s+python manage\.py clearsessions\s+\d{4}-\d\d-\d\d \d\d:\d[05] \(in \d+[sm]\)\s+3m ago as run\.4321`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("cron output does not match %s:\n%s", re, out)
		}
	}
	var jobs []skiff.CronJobView
	if err := json.Unmarshal([]byte(w.ok("cron", "-a", "shop", "--json")), &jobs); err != nil || len(jobs) != 2 ||
		jobs[1].LastRun == nil || jobs[1].LastRun.Name != "run.4321" || jobs[0].NextRun.Hour() != 0 {
		t.Errorf("cron --json = %+v, %v", jobs, err)
	}
	if out := w.ok("cron", "--help"); !strings.Contains(out, "skiff cron -a shop") || !strings.Contains(out, "UTC") {
		t.Errorf("cron --help:\n%s", out)
	}
}
