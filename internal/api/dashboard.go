package api

import (
	"net/http"

	"github.com/skiff-paas/skiff/internal/api/dashboard"
	"github.com/skiff-paas/skiff/internal/client"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// mountDashboard serves the web dashboard under /dashboard/ and sends
// browsers that open / there; every other request no route takes gets
// the API's JSON 404. The dashboard acts through this same mux, in
// process, with the token of the user logged in: it passes the same
// checks as the CLI (internal/api/dashboard).
func (a *API) mountDashboard(mux *http.ServeMux) {
	d, err := dashboard.New(dashboard.Config{
		Client: func(token string) *client.Client { return client.NewHandler(mux, token) },
		Logger: a.log,
	})
	if err != nil {
		panic(err) // only a missing Client fails, which is not the case
	}
	mux.Handle(dashboard.Prefix, d)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) && dashboard.WantsPage(r) {
			http.Redirect(w, r, dashboard.Prefix, http.StatusSeeOther)
			return
		}
		writeError(w, skiff.Errorf(skiff.KindNotFound, "docs/api.md lists the routes", "no such route: %s %s", r.Method, r.URL.Path))
	})
}
