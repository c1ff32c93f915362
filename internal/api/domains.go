package api

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func (a *API) domainsOf(ctx context.Context, app string) ([]skiff.Domain, error) {
	all, err := a.st.Domains.Values(ctx, "")
	if err != nil {
		return nil, err
	}
	out := []skiff.Domain{}
	for _, d := range all {
		if d.App == app {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Hostname < out[j].Hostname })
	return out, nil
}

func (a *API) listDomains(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err == nil {
		var ds []skiff.Domain
		if ds, err = a.domainsOf(r.Context(), app.Name); err == nil {
			writeJSON(w, http.StatusOK, ds)
			return
		}
	}
	writeError(w, err)
}

func (a *API) addDomain(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req skiff.DomainRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	host, err := skiff.NormalizeHostname(req.Hostname)
	if err != nil {
		writeError(w, err)
		return
	}
	if host == a.cfg.Domain || strings.HasSuffix(host, "."+a.cfg.Domain) {
		writeError(w, skiff.Errorf(skiff.KindInvalid, "every app answers at NAME."+a.cfg.Domain+" already; add a hostname of your own",
			"%s is under the platform domain %s", host, a.cfg.Domain))
		return
	}
	d := skiff.Domain{Hostname: host, App: app.Name, CreatedAt: time.Now().UTC()}
	if _, err := a.st.Domains.Create(r.Context(), skiff.DomainKey(host), d); errors.Is(err, skiff.ErrConflict) {
		owner, _, _ := a.st.Domains.Get(r.Context(), skiff.DomainKey(host))
		if owner.App == app.Name {
			writeError(w, skiff.Errorf(skiff.KindConflict, "skiff domains -a "+app.Name+" lists its domains", "%s is already a domain of %s", host, app.Name))
		} else {
			writeError(w, skiff.Errorf(skiff.KindConflict, "remove it from the other app first", "%s is already used by another app", host))
		}
		return
	} else if err != nil {
		writeError(w, err)
		return
	}
	a.st.Emit(skiff.Event{App: app.Name, Type: skiff.EventDomainAdded, Actor: tok.User, Message: "Domain " + host + " added by " + tok.User})
	writeJSON(w, http.StatusCreated, d)
}

// appHostname loads the app and the hostname a request's path names.
func (a *API) appHostname(r *http.Request) (skiff.App, string, error) {
	app, _, err := a.app(r)
	if err != nil {
		return app, "", err
	}
	host, err := skiff.NormalizeHostname(r.PathValue("hostname"))
	return app, host, err
}

func (a *API) removeDomain(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, host, err := a.appHostname(r)
	if err != nil {
		writeError(w, err)
		return
	}
	d, rev, err := a.st.Domains.Get(r.Context(), skiff.DomainKey(host))
	if errors.Is(err, skiff.ErrNotFound) || err == nil && d.App != app.Name {
		writeError(w, skiff.Errorf(skiff.KindNotFound, "skiff domains -a "+app.Name+" lists its domains", "%s is not a domain of %s", host, app.Name))
		return
	}
	if err == nil {
		err = a.st.Domains.DeleteAt(r.Context(), skiff.DomainKey(host), rev)
	}
	if err == nil {
		err = a.st.Certs.Delete(r.Context(), skiff.DomainKey(host))
	}
	if err != nil {
		writeError(w, err)
		return
	}
	a.st.Emit(skiff.Event{App: app.Name, Type: skiff.EventDomainRemoved, Actor: tok.User, Message: "Domain " + host + " removed by " + tok.User})
	w.WriteHeader(http.StatusNoContent)
}
