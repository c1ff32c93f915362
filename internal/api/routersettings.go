package api

import (
	"net/http"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// routerView is an app's router settings with the defaults filled in.
func routerView(s skiff.RouterSettings) skiff.RouterSettings {
	if s.Balance == "" {
		s.Balance = skiff.BalanceLeastConnections
	}
	return s
}

func (a *API) getRouterSettings(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, routerView(app.Router))
}

func (a *API) changeRouterSettings(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var ch skiff.RouterChange
	if err := readJSON(r, &ch); err != nil {
		writeError(w, err)
		return
	}
	if b := ch.Balance; b != nil && *b != skiff.BalanceLeastConnections && *b != skiff.BalanceRoundRobin {
		writeError(w, skiff.Errorf(skiff.KindInvalid, "balance is least-connections or round-robin", "unknown balance %q", *b))
		return
	}
	for _, p := range []*string{ch.ErrorPage, ch.MaintenancePage} {
		if p == nil {
			continue
		}
		if err := skiff.ValidatePagePath(*p); err != nil {
			writeError(w, err)
			return
		}
	}
	app, _, err = a.st.Apps.Update(r.Context(), app.Name, func(app *skiff.App) error {
		before := app.Router
		if ch.Balance != nil {
			app.Router.Balance = *ch.Balance
			if app.Router.Balance == skiff.BalanceLeastConnections {
				app.Router.Balance = ""
			}
		}
		if ch.Sticky != nil {
			app.Router.Sticky = *ch.Sticky
		}
		if ch.HTTPSRedirect != nil {
			app.Router.HTTPSRedirect = *ch.HTTPSRedirect
		}
		if ch.ErrorPage != nil {
			app.Router.ErrorPage = *ch.ErrorPage
		}
		if ch.MaintenancePage != nil {
			app.Router.MaintenancePage = *ch.MaintenancePage
		}
		if app.Router == before {
			return store.ErrNoChange
		}
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, routerView(app.Router))
}
