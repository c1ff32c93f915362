package build_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/skiff-paas/skiff/internal/build"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// TestBuildCron: app.json's cron entries are checked, and kept in the
// release as written (cleaned up), also when the build reuses an image.
func TestBuildCron(t *testing.T) {
	st := start(t, build.Config{})
	for name, c := range map[string]struct {
		cron, err, hint string
	}{
		"bad schedule": {`[{"command": "x", "schedule": "*/5 * * *"}]`, `app.json cron: entry 1: schedule "*/5 * * *": expected exactly 5 fields`, "five fields"},
		"no command":   {`[{"command": "x", "schedule": "@daily"}, {"schedule": "@daily"}]`, "app.json cron: entry 2: no command", `"command"`},
		"too often":    {`[{"command": "x", "schedule": "*/30 * * * * *"}]`, "at most once a minute", "seconds"},
		"every":        {`[{"command": "x", "schedule": "@every 10s"}]`, "more often than once a minute", "every minute"},
		"not a list":   {`{"command": "x"}`, "app.json is not valid", "app.json"},
	} {
		res, lines := deploy(t, st, skiff.BuildRequest{ID: strings.ReplaceAll(name, " ", "-"), App: "bad"},
			map[string]string{"Procfile": "web: x\n", "app.json": `{"cron": ` + c.cron + `}`})
		if !strings.Contains(res.Error, c.err) || !strings.Contains(res.Hint, c.hint) || res.Release != 0 {
			t.Errorf("%s: result %+v, want an error with %q and a hint with %q\n%s", name, res, c.err, c.hint, strings.Join(lines, "\n"))
		}
	}

	files := map[string]string{"Procfile": "web: x\n", "app.json": `{"cron": [
		{"command": "python manage.py clearsessions", "schedule": "*/5 * * * *"},
		{"command": " ./backup.sh ", "schedule": "@Daily"}]}`}
	want := []skiff.CronJob{{Schedule: "*/5 * * * *", Command: "python manage.py clearsessions"}, {Schedule: "@daily", Command: "./backup.sh"}}
	ctx := context.Background()
	res, lines := deploy(t, st, skiff.BuildRequest{ID: "good-1", App: "good"}, files)
	if res.Error != "" {
		t.Fatalf("build: %+v\n%s", res, strings.Join(lines, "\n"))
	}
	rel, _, err := st.Release(ctx, "good", res.Release)
	if err != nil || !slices.Equal(rel.Cron, want) {
		t.Fatalf("release cron = %+v, %v; want %+v", rel.Cron, err, want)
	}
	// A release of before cron existed: the same source built again
	// reuses its image, and takes the jobs from app.json.
	rel.Cron = nil
	if _, err := st.Releases.Put(ctx, skiff.ReleaseKey("good", rel.Version), rel); err != nil {
		t.Fatal(err)
	}
	res, lines = deploy(t, st, skiff.BuildRequest{ID: "good-2", App: "good"}, files)
	if res.Error != "" || !strings.Contains(strings.Join(lines, "\n"), "reusing its image") {
		t.Fatalf("rebuild: %+v\n%s", res, strings.Join(lines, "\n"))
	}
	rel, _, err = st.Release(ctx, "good", res.Release)
	if err != nil || !slices.Equal(rel.Cron, want) {
		t.Fatalf("reused release cron = %+v, %v; want %+v", rel.Cron, err, want)
	}
}
