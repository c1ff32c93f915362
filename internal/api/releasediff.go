package api

import (
	"net/http"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// releaseDiff tells which config vars a release changed, by name only:
// GET /v1/apps/{app}/releases/{version}/diff, against the release before
// it or, with ?from=vN, against that one. The dashboard shows it next to
// each release; values are never part of the answer.
func (a *API) releaseDiff(w http.ResponseWriter, r *http.Request, _ skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	to, err := skiff.ParseVersion(r.PathValue("version"))
	if err != nil {
		writeError(w, err)
		return
	}
	from := to - 1
	if s := r.URL.Query().Get("from"); s != "" {
		if from, err = skiff.ParseVersion(s); err != nil {
			writeError(w, err)
			return
		}
	}
	vars := func(version int) (map[string]string, error) {
		if version == 0 {
			return map[string]string{}, nil
		}
		rel, _, err := a.st.Release(r.Context(), app.Name, version)
		if err != nil {
			return nil, err
		}
		return a.st.OpenConfig(rel.ConfigSealed)
	}
	newer, err := vars(to)
	if err != nil {
		writeError(w, err)
		return
	}
	older, err := vars(from)
	if err != nil {
		writeError(w, err)
		return
	}
	d := skiff.DiffConfig(older, newer)
	d.From, d.To = from, to
	writeJSON(w, http.StatusOK, d)
}
