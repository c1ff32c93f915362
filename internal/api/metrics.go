package api

import (
	"net/http"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// appMetrics answers GET /v1/apps/{app}/metrics?since=1h&until=…&step=auto:
// the app's points over the span (since an hour ago, until now, by
// default) at the step asked (auto: the finest that keeps the span and
// gives at most 1500 points). since and until are ages back from now (1h,
// 2d) or RFC 3339 times. Points from before the app was created (of an
// app of the same name, destroyed) are left out.
func (a *API) appMetrics(w http.ResponseWriter, r *http.Request, _ skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	v, now := r.URL.Query(), time.Now()
	q := store.MetricsQuery{Since: now.Add(-time.Hour), Until: now, Step: v.Get("step")}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if s := v.Get(p.name); s != "" {
			if *p.to, err = skiff.ParseSince(s, now); err != nil {
				writeError(w, err)
				return
			}
		}
	}
	series, err := a.st.Metrics(r.Context(), app.Name, q)
	if err != nil {
		writeError(w, err)
		return
	}
	step := time.Duration(series.Step * float64(time.Second))
	kept := series.Points[:0]
	for _, p := range series.Points {
		if p.Time.Add(step).After(app.CreatedAt) {
			kept = append(kept, p)
		}
	}
	series.Points = kept
	writeJSON(w, http.StatusOK, series)
}
