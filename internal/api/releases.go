package api

import (
	"fmt"
	"net/http"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

func (a *API) listReleases(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	rels, err := a.st.ListReleases(r.Context(), app.Name)
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]skiff.ReleaseView, 0, len(rels))
	for i := len(rels) - 1; i >= 0; i-- {
		out = append(out, rels[i].View(app.Current))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) getRelease(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	v, err := skiff.ParseVersion(r.PathValue("version"))
	if err != nil {
		writeError(w, err)
		return
	}
	rel, _, err := a.st.Release(r.Context(), app.Name, v)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rel.View(app.Current))
}

// rollback makes a new release that runs an earlier release's image with
// its config. The app's config becomes that config too, so that the next
// deploy does not bring back what was rolled back.
func (a *API) rollback(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req skiff.RollbackRequest
	if r.ContentLength != 0 {
		if err := readJSON(r, &req); err != nil {
			writeError(w, err)
			return
		}
	}
	hint := "skiff releases -a " + app.Name + " lists the releases"
	if app.Current == 0 {
		writeError(w, skiff.Errorf(skiff.KindInvalid, hint, "%s has no running release to roll back from", app.Name))
		return
	}
	rels, err := a.st.ListReleases(r.Context(), app.Name)
	if err != nil {
		writeError(w, err)
		return
	}
	var target *skiff.Release
	for i := len(rels) - 1; i >= 0; i-- {
		rel := &rels[i]
		if req.Version != 0 && rel.Version == req.Version ||
			req.Version == 0 && rel.Version < app.Current && rel.Status == skiff.ReleaseSucceeded {
			target = rel
			break
		}
	}
	if target == nil {
		if req.Version != 0 {
			writeError(w, skiff.Errorf(skiff.KindNotFound, hint, "app %s has no release %s", app.Name, skiff.VersionLabel(req.Version)))
		} else {
			writeError(w, skiff.Errorf(skiff.KindInvalid, hint, "%s has no earlier release that ran to roll back to", app.Name))
		}
		return
	}
	vars, err := a.st.OpenConfig(target.ConfigSealed)
	if err != nil {
		writeError(w, err)
		return
	}
	_, version, _, err := a.st.UpdateConfig(r.Context(), app.Name, func(cur map[string]string) error {
		if sameVars(cur, vars) {
			return store.ErrNoChange
		}
		for k := range cur {
			delete(cur, k)
		}
		for k, v := range vars {
			cur[k] = v
		}
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	next := target.Derive(fmt.Sprintf("Rollback to %s", target.Label()), tok.User)
	next.ConfigVersion = version
	// The app's own health check is a setting of today, not of the
	// release rolled back to.
	next.HealthCheck = skiff.EffectiveHealthCheck(app, target.ManifestHealthCheck)
	rel, err := a.st.CreateRelease(r.Context(), next)
	if err != nil {
		writeError(w, err)
		return
	}
	a.st.Emit(skiff.Event{App: app.Name, Type: skiff.EventRollback, Release: rel.Version, Actor: tok.User,
		Message: fmt.Sprintf("Rolled back to %s by %s: release %s", target.Label(), tok.User, rel.Label())})
	writeJSON(w, http.StatusCreated, rel.View(app.Current))
}

func sameVars(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
