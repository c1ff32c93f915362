package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

func (a *API) listApps(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	apps, err := a.st.Apps.Values(r.Context(), "")
	if err != nil {
		writeError(w, err)
		return
	}
	sort.Slice(apps, func(i, j int) bool { return apps[i].Name < apps[j].Name })
	out := make([]skiff.AppInfo, 0, len(apps))
	for _, app := range apps {
		if !tok.MayUse(app) {
			continue
		}
		info, err := a.info(r, app)
		if err != nil {
			writeError(w, err)
			return
		}
		out = append(out, info)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) createApp(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	var req skiff.CreateAppRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := skiff.ValidateAppName(req.Name); err != nil {
		writeError(w, err)
		return
	}
	app := skiff.App{Name: req.Name, CreatedAt: time.Now().UTC(), Owner: tok.User}
	if _, err := a.st.Apps.Create(r.Context(), app.Name, app); errors.Is(err, skiff.ErrConflict) {
		writeError(w, skiff.Errorf(skiff.KindConflict, "choose another name, or use it: skiff apps info "+app.Name,
			"app %s already exists", app.Name))
		return
	} else if err != nil {
		writeError(w, err)
		return
	}
	a.st.Emit(skiff.Event{App: app.Name, Type: skiff.EventAppCreated, Actor: tok.User, Message: "App created by " + tok.User})
	info, err := a.info(r, app)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, info)
}

func (a *API) appInfo(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err == nil {
		var info skiff.AppInfo
		if info, err = a.info(r, app); err == nil {
			writeJSON(w, http.StatusOK, info)
			return
		}
	}
	writeError(w, err)
}

// info gathers what the API shows of an app.
func (a *API) info(r *http.Request, app skiff.App) (skiff.AppInfo, error) {
	ctx := r.Context()
	info := skiff.AppInfo{Name: app.Name, Owner: app.Owner, CreatedAt: app.CreatedAt, URL: a.appURL(app.Name),
		GitURL: a.gitURL(r, app.Name), Current: app.Current, Maintenance: app.Maintenance,
		Domains: []string{}, Formation: map[string]int{}, Instances: map[skiff.InstanceState]int{}}
	rels, err := a.st.ListReleases(ctx, app.Name)
	if err != nil {
		return info, err
	}
	if len(rels) > 0 {
		info.Latest = rels[len(rels)-1].Version
	}
	formation, err := a.formation(ctx, app.Name)
	if err != nil {
		return info, err
	}
	if base, ok := store.BaseRelease(rels, app.Current); ok {
		info.ImageSize = base.Image.Size
		for _, t := range base.ProcessTypes() {
			info.Formation[t] = formation.Count(t)
		}
	}
	domains, err := a.domainsOf(ctx, app.Name)
	if err != nil {
		return info, err
	}
	for _, d := range domains {
		info.Domains = append(info.Domains, d.Hostname)
	}
	insts, err := a.st.Instances.Values(ctx, app.Name+".*")
	if err != nil {
		return info, err
	}
	for _, i := range insts {
		info.Instances[i.State]++
	}
	return info, nil
}

func (a *API) destroyApp(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if r.URL.Query().Get("confirm") != app.Name {
		writeError(w, skiff.Errorf(skiff.KindInvalid, fmt.Sprintf("repeat the name to confirm: skiff apps destroy %s --confirm %s", app.Name, app.Name),
			"destroying %s deletes its releases, config, domains, logs, git repository, build cache, add-ons and backups, and stops its processes", app.Name))
		return
	}
	if err := a.destroyAddons(r.Context(), app.Name, tok.User); err != nil {
		writeError(w, err)
		return
	}
	if err := a.destroy(r.Context(), app.Name); err != nil {
		writeError(w, err)
		return
	}
	a.st.Emit(skiff.Event{App: app.Name, Type: skiff.EventAppDestroyed, Actor: tok.User, Message: "App destroyed by " + tok.User})
	w.WriteHeader(http.StatusNoContent)
}

// destroy removes an app and everything it owns. The app record goes
// first: from then on the scheduler retires its instances and nothing new
// can be released for it.
func (a *API) destroy(ctx context.Context, name string) error {
	if err := a.st.Apps.Delete(ctx, name); err != nil {
		return err
	}
	rels, err := a.st.ListReleases(ctx, name)
	if err != nil {
		return err
	}
	images := map[string]bool{}
	for _, rel := range rels {
		images[rel.Image.Object] = true
		if err := a.st.Releases.Delete(ctx, skiff.ReleaseKey(name, rel.Version)); err != nil {
			return err
		}
	}
	for obj := range images {
		if obj == "" {
			continue
		}
		if err := a.st.Slugs.Delete(ctx, obj); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return err
		}
	}
	domains, err := a.domainsOf(ctx, name)
	if err != nil {
		return err
	}
	for _, d := range domains {
		if err := a.st.Certs.Delete(ctx, skiff.DomainKey(d.Hostname)); err != nil {
			return err
		}
		if err := a.st.Domains.Delete(ctx, skiff.DomainKey(d.Hostname)); err != nil {
			return err
		}
	}
	if err := a.st.Configs.Delete(ctx, name); err != nil {
		return err
	}
	if err := a.st.Formations.Delete(ctx, name); err != nil {
		return err
	}
	// Backups go with the app: another app may take its name later.
	backups, err := a.st.Backups.Values(ctx, name+".*")
	if err != nil {
		return err
	}
	for _, b := range backups {
		if err := a.st.BackupFiles.Delete(ctx, b.Key()); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return err
		}
		if err := a.st.Backups.Delete(ctx, b.Key()); err != nil {
			return err
		}
	}
	if err := a.removeDrains(ctx, name); err != nil {
		return err
	}
	if err := a.removeNotices(ctx, name); err != nil {
		return err
	}
	logs, err := a.st.JS.Stream(ctx, skiff.StreamLogs)
	if err == nil {
		err = logs.Purge(ctx, jetstream.WithPurgeSubject(skiff.LogSubject(name, "*", ">")))
	}
	return err
}

// removeNotices removes an app's webhooks, their deliveries and its alert
// rules: another app may take its name later, and must not send its
// events to this one's URLs.
func (a *API) removeNotices(ctx context.Context, app string) error {
	hooks, err := a.st.Webhooks.Values(ctx, skiff.WebhookKey(app, "*"))
	if err != nil {
		return err
	}
	for _, h := range hooks {
		if err := a.st.Webhooks.Delete(ctx, h.Key()); err != nil {
			return err
		}
		if err := a.st.Deliveries.Delete(ctx, h.Key()); err != nil {
			return err
		}
	}
	rules, err := a.st.AlertRules.Values(ctx, skiff.AlertRuleKey(app, "*"))
	if err != nil {
		return err
	}
	for _, r := range rules {
		if err := a.st.AlertRules.Delete(ctx, r.Key()); err != nil {
			return err
		}
	}
	return nil
}

// destroyAddons destroys an app's add-ons, their servers and databases,
// before the app goes; it stops at the first that cannot be destroyed,
// and the app stays.
func (a *API) destroyAddons(ctx context.Context, app, actor string) error {
	addons, err := a.st.Addons.Values(ctx, app+".*")
	if err != nil {
		return err
	}
	for _, ad := range addons {
		res, err := a.st.AddonJob(ctx, skiff.AddonRequest{ID: secret.Token(12), Op: skiff.AddonOpDestroy, App: app, Addon: ad.Name,
			Actor: actor, Confirm: app, Kind: skiff.AddonWithApp}, nil)
		if err != nil {
			return err
		}
		if res.Error != "" {
			return &skiff.Error{Kind: res.Code, Message: fmt.Sprintf("could not destroy add-on %s: %s", ad.Name, res.Error), Hint: res.Hint}
		}
	}
	return nil
}

// setMaintenance turns the app's maintenance mode on or off.
func (a *API) setMaintenance(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var ch skiff.MaintenanceChange
	if err := readJSON(r, &ch); err != nil {
		writeError(w, err)
		return
	}
	changed := false
	app, _, err = a.st.Apps.Update(r.Context(), app.Name, func(app *skiff.App) error {
		if app.Maintenance == ch.Enabled {
			return store.ErrNoChange
		}
		app.Maintenance, changed = ch.Enabled, true
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	if changed {
		msg := "Maintenance mode disabled by " + tok.User
		if ch.Enabled {
			msg = "Maintenance mode enabled by " + tok.User
		}
		a.st.Emit(skiff.Event{App: app.Name, Type: skiff.EventMaintenance, Actor: tok.User, Message: msg})
	}
	info, err := a.info(r, app)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}
