package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// TestHealthCheckSetting: the app's own health check path makes a release
// that carries it, overrides app.json's, and config changes keep it (and
// the rest of the release's settings).
func TestHealthCheckSetting(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	e.do("POST", "/v1/apps", map[string]string{"name": "shop"}, nil)
	var v skiff.HealthCheckView
	if code, _ := e.do("PUT", "/v1/apps/shop/healthcheck", skiff.HealthCheckChange{Path: "/up"}, &v); code != 200 ||
		v.Path != "/up" || v.Source != "app" || v.Release != 0 {
		t.Fatalf("set before any release: %d %+v", code, v)
	}
	// A release as a build makes it, with app.json's check and env.
	base, err := e.st.CreateRelease(ctx, skiff.Release{App: "shop", Processes: map[string]string{"web": "serve"},
		ManifestHealthCheck: "/from-app-json", HealthCheck: "/up", Env: map[string]string{"A": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	e.st.Apps.Update(ctx, "shop", func(a *skiff.App) error { a.Current = base.Version; return nil })

	e.do("PUT", "/v1/apps/shop/healthcheck", skiff.HealthCheckChange{Path: "/health?deep=1"}, &v)
	rel, _, _ := e.st.Release(ctx, "shop", v.Release)
	if v.Path != "/health?deep=1" || rel.HealthCheck != "/health?deep=1" || rel.Env["A"] != "1" || rel.ManifestHealthCheck != "/from-app-json" {
		t.Fatalf("set: %+v, release %+v", v, rel)
	}
	e.st.Apps.Update(ctx, "shop", func(a *skiff.App) error { a.Current = rel.Version; return nil })

	// A config change keeps the check and the app.json env.
	var cr skiff.ConfigResponse
	e.do("PATCH", "/v1/apps/shop/config", skiff.ConfigChange{Set: map[string]string{"B": "2"}}, &cr)
	rel, _, _ = e.st.Release(ctx, "shop", cr.Release)
	if rel.HealthCheck != "/health?deep=1" || rel.Env["A"] != "1" || len(rel.Processes) != 1 {
		t.Fatalf("config change lost settings: %+v", rel)
	}
	e.st.Apps.Update(ctx, "shop", func(a *skiff.App) error { a.Current = rel.Version; return nil })

	// Unset: app.json's applies again.
	e.do("DELETE", "/v1/apps/shop/healthcheck", nil, &v)
	rel, _, _ = e.st.Release(ctx, "shop", v.Release)
	if v.Path != "/from-app-json" || v.Source != "app.json" || rel.HealthCheck != "/from-app-json" {
		t.Fatalf("unset: %+v, release %+v", v, rel)
	}
	e.expect("PUT", "/v1/apps/shop/healthcheck", skiff.HealthCheckChange{Path: "health"}, http.StatusBadRequest, skiff.KindInvalid, "invalid health check path")
}
