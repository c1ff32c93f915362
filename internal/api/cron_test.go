package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// TestCron: the jobs of the current release, with their next run from
// now and their last run; a rollback brings back its release's jobs.
func TestCron(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	e.do("POST", "/v1/apps", skiff.CreateAppRequest{Name: "shop"}, nil)
	e.expect("GET", "/v1/apps/nope/cron", nil, 404, skiff.KindNotFound, "no app named nope")
	var jobs []skiff.CronJobView
	if code, _ := e.do("GET", "/v1/apps/shop/cron", nil, &jobs); code != 200 || jobs == nil || len(jobs) != 0 {
		t.Fatalf("before a deploy = %d %+v; want an empty list", code, jobs)
	}

	hourly := skiff.CronJob{Schedule: "@hourly", Command: "./report"}
	often := skiff.CronJob{Schedule: "*/5 * * * *", Command: "python manage.py clearsessions"}
	sealed, _ := e.st.SealConfig(map[string]string{})
	e.st.Releases.Put(ctx, skiff.ReleaseKey("shop", 1), skiff.Release{App: "shop", Version: 1, Status: skiff.ReleaseSucceeded,
		Processes: map[string]string{"web": "./web"}, ConfigSealed: sealed, Cron: []skiff.CronJob{hourly, often}})
	e.st.Releases.Put(ctx, skiff.ReleaseKey("shop", 2), skiff.Release{App: "shop", Version: 2, Status: skiff.ReleaseSucceeded,
		Processes: map[string]string{"web": "./web"}, ConfigSealed: sealed})
	e.st.Apps.Update(ctx, "shop", func(a *skiff.App) error { a.Current = 2; return nil })
	if code, _ := e.do("GET", "/v1/apps/shop/cron", nil, &jobs); code != 200 || len(jobs) != 0 {
		t.Fatalf("v2 without jobs = %d %+v", code, jobs)
	}

	// Rolling back to v1 makes v3 with v1's jobs.
	var rel skiff.ReleaseView
	if code, _ := e.do("POST", "/v1/apps/shop/rollback", skiff.RollbackRequest{Version: 1}, &rel); code != 201 || rel.Version != 3 {
		t.Fatalf("rollback = %d %+v", code, rel)
	}
	e.st.Apps.Update(ctx, "shop", func(a *skiff.App) error { a.Current = 3; return nil })
	slot := time.Now().UTC().Truncate(time.Hour)
	e.st.Cron.Put(ctx, skiff.CronLastKey("shop", hourly.ID()), skiff.CronRun{App: "shop", Job: hourly.ID(), Index: 1,
		Command: hourly.Command, Slot: slot, Name: "run.4242", Release: 1})

	before := time.Now().UTC()
	if code, _ := e.do("GET", "/v1/apps/shop/cron", nil, &jobs); code != 200 || len(jobs) != 2 {
		t.Fatalf("v3 = %d %+v; want v1's two jobs", code, jobs)
	}
	h, o := jobs[0], jobs[1]
	if h.Index != 1 || h.ID != hourly.ID() || h.Schedule != "@hourly" || h.Command != "./report" ||
		!h.NextRun.Equal(before.Truncate(time.Hour).Add(time.Hour)) && !h.NextRun.Equal(before.Truncate(time.Hour).Add(2*time.Hour)) {
		t.Errorf("job 1 = %+v", h)
	}
	if h.LastRun == nil || h.LastRun.Name != "run.4242" || !h.LastRun.Slot.Equal(slot) {
		t.Errorf("job 1's last run = %+v", h.LastRun)
	}
	if o.Index != 2 || o.LastRun != nil || o.NextRun.Minute()%5 != 0 || o.NextRun.Second() != 0 ||
		!o.NextRun.After(before) || o.NextRun.Sub(before) > 5*time.Minute+time.Second {
		t.Errorf("job 2 = %+v", o)
	}
}
