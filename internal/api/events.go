package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// maxEvents bounds how many events one request may ask for.
const maxEvents = 10_000

// appEvents lists an app's events: GET /v1/apps/{app}/events.
func (a *API) appEvents(w http.ResponseWriter, r *http.Request, _ skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	a.events(w, r, app.Name)
}

// allEvents lists every app's events and the platform's, or with
// ?app=_platform the platform's only: GET /v1/events, for admins.
func (a *API) allEvents(w http.ResponseWriter, r *http.Request, _ skiff.Token) {
	app := r.URL.Query().Get("app")
	if app != "" && app != skiff.PlatformScope {
		if err := skiff.ValidateAppName(app); err != nil {
			writeError(w, err)
			return
		}
	}
	a.events(w, r, app)
}

// events answers with the events of scope (an app, PlatformScope or ""
// for all) that the query asks for: since (a duration back from now, as
// 1h, or an RFC 3339 time), type (filters as webhooks take them) and
// limit (the newest so many, default 100), oldest first.
func (a *API) events(w http.ResponseWriter, r *http.Request, scope string) {
	q := store.EventQuery{App: scope, Limit: 100}
	v := r.URL.Query()
	if s := v.Get("since"); s != "" {
		since, err := skiff.ParseSince(s, time.Now())
		if err != nil {
			writeError(w, err)
			return
		}
		q.Since = since
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxEvents {
			writeError(w, skiff.Errorf(skiff.KindInvalid, "give a number from 1 to 10000, e.g. -n 50", "invalid limit %q", s))
			return
		}
		q.Limit = n
	}
	filters := v["type"]
	if err := skiff.ValidateEventFilters(filters); err != nil {
		writeError(w, err)
		return
	}
	out := []skiff.Event{}
	// With a type filter the limit applies after filtering: the newest
	// events that pass, kept in a window of the limit.
	limit := q.Limit
	if len(filters) > 0 {
		q.Limit = 0
	}
	err := a.st.ReadEvents(r.Context(), q, func(ev skiff.Event) error {
		if skiff.MatchEvent(filters, ev.Type) {
			out = append(out, ev)
			if len(out) > limit {
				out = out[1:]
			}
		}
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
