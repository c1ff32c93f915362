package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/skiff-paas/skiff/internal/schedule"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// listCron lists the scheduled jobs of the app's current release, with
// when each runs next and how it last ran.
func (a *API) listCron(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	out := []skiff.CronJobView{}
	if app.Current == 0 {
		writeJSON(w, http.StatusOK, out)
		return
	}
	rel, _, err := a.st.Release(r.Context(), app.Name, app.Current)
	if err != nil {
		writeError(w, err)
		return
	}
	now := time.Now().UTC()
	for i, j := range rel.Cron {
		v := skiff.CronJobView{Index: i + 1, ID: j.ID(), Schedule: j.Schedule, Command: j.Command}
		if s, err := schedule.Parse(j.Schedule); err == nil {
			v.NextRun = s.Next(now)
		}
		last, _, err := a.st.Cron.Get(r.Context(), skiff.CronLastKey(app.Name, v.ID))
		switch {
		case err == nil:
			v.LastRun = &last
		case !errors.Is(err, skiff.ErrNotFound):
			writeError(w, err)
			return
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
}
