package api

import (
	"context"
	"net/http"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

func (a *API) getHealthCheck(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	view, _, err := a.healthCheckView(r.Context(), app)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, view)
}

func (a *API) setHealthCheck(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	var ch skiff.HealthCheckChange
	if err := readJSON(r, &ch); err != nil {
		writeError(w, err)
		return
	}
	if err := skiff.ValidateHealthCheck(ch.Path); err != nil {
		writeError(w, err)
		return
	}
	a.changeHealthCheck(w, r, tok, ch.Path)
}

func (a *API) unsetHealthCheck(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	a.changeHealthCheck(w, r, tok, "")
}

// changeHealthCheck sets the app's own health check path (empty: none,
// app.json's applies) and, when the app runs a release whose check this
// changes, makes a release of it with the new check.
func (a *API) changeHealthCheck(w http.ResponseWriter, r *http.Request, tok skiff.Token, path string) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	app, _, err = a.st.Apps.Update(r.Context(), app.Name, func(app *skiff.App) error {
		if app.HealthCheck == path {
			return store.ErrNoChange
		}
		app.HealthCheck = path
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	view, base, err := a.healthCheckView(r.Context(), app)
	if err != nil {
		writeError(w, err)
		return
	}
	if base != nil && base.HealthCheck != view.Path {
		desc := "Remove the health check"
		if view.Path != "" {
			desc = "Set health check " + view.Path
		}
		next := base.Derive(desc+" by "+tok.User, tok.User)
		next.HealthCheck = view.Path
		rel, err := a.st.CreateRelease(r.Context(), next)
		if err != nil {
			writeError(w, err)
			return
		}
		view.Release = rel.Version
	}
	writeJSON(w, http.StatusOK, view)
}

// healthCheckView is the app's health check in effect, and the release
// that the next release would be made from (nil before any).
func (a *API) healthCheckView(ctx context.Context, app skiff.App) (skiff.HealthCheckView, *skiff.Release, error) {
	rels, err := a.st.ListReleases(ctx, app.Name)
	if err != nil {
		return skiff.HealthCheckView{}, nil, err
	}
	view := skiff.HealthCheckView{}
	var base *skiff.Release
	if b, ok := store.BaseRelease(rels, app.Current); ok {
		base = &b
	}
	switch {
	case app.HealthCheck != "":
		view.Path, view.Source = app.HealthCheck, "app"
	case base != nil && base.ManifestHealthCheck != "":
		view.Path, view.Source = base.ManifestHealthCheck, "app.json"
	}
	return view, base, nil
}
