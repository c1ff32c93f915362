package api

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/skiff-paas/skiff/internal/deploy"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// The add-on routes check what they can before handing a job to the
// addons role (internal/addons), which checks the rest; the job's
// progress is streamed as the deploys' is, ending with its result. The
// routes of jobs are jobRoute's, each with a function that checks the
// request and completes the job's AddonRequest.

func (a *API) listAddons(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	addons, err := a.addonsOf(r.Context(), app.Name)
	if err != nil {
		writeError(w, err)
		return
	}
	cfg, _, err := a.st.Config(r.Context(), app.Name)
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]skiff.AddonView, 0, len(addons))
	for _, ad := range addons {
		out = append(out, a.addonView(r.Context(), ad, cfg))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) getAddon(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, ad, err := a.appAddon(r)
	if err != nil {
		writeError(w, err)
		return
	}
	a.writeAddon(w, r, app.Name, ad)
}

// createAddon is the job of a create: the body checked, and the name, if
// one is given, free.
func (a *API) createAddon(r *http.Request, app skiff.App, req *skiff.AddonRequest) error {
	var body skiff.AddonCreateRequest
	if err := readJSON(r, &body); err != nil {
		return err
	}
	spec, err := addonSpec(app.Name, body)
	if err != nil {
		return err
	}
	if spec.Name != "" {
		if _, _, err := a.st.Addons.Get(r.Context(), skiff.AddonKey(app.Name, spec.Name)); err == nil {
			return skiff.Errorf(skiff.KindConflict, "choose another name with --name, or see it: skiff addons info "+spec.Name+" -a "+app.Name,
				"%s already has an add-on named %s", app.Name, spec.Name)
		} else if !errors.Is(err, skiff.ErrNotFound) {
			return err
		}
	}
	req.Addon, req.Spec = spec.Name, spec
	return nil
}

// addonSpec checks the body of an add-on's creation and makes the spec
// the addons role takes.
func addonSpec(app string, body skiff.AddonCreateRequest) (*skiff.Addon, error) {
	types := slices.Sorted(maps.Keys(skiff.AddonPlans))
	plans, ok := skiff.AddonPlans[body.Type]
	if !ok {
		return nil, skiff.Errorf(skiff.KindInvalid, "the types are "+strings.Join(types, " and ")+", e.g. skiff addons create postgres -a "+app,
			"unknown add-on type %q", body.Type)
	}
	spec := &skiff.Addon{App: app, Type: body.Type, Plan: body.Plan, Name: body.Name, ConfigVar: body.As, HA: body.HA,
		MaxMemory: int64(body.MaxMemory), Eviction: body.Eviction, NoPersistence: body.NoPersistence}
	if spec.Plan == "" {
		spec.Plan = plans[0]
	}
	if !slices.Contains(plans, spec.Plan) {
		return nil, skiff.Errorf(skiff.KindInvalid, "the plans of "+body.Type+" are "+strings.Join(plans, " and "),
			"%s has no plan %q", body.Type, spec.Plan)
	}
	if spec.Name != "" {
		if err := skiff.ValidateAddonName(spec.Name); err != nil {
			return nil, err
		}
	}
	if spec.ConfigVar != "" {
		if err := skiff.ValidateConfigKey(spec.ConfigVar); err != nil {
			return nil, err
		}
	}
	if spec.Type != skiff.AddonRedis && (spec.MaxMemory != 0 || spec.Eviction != "" || spec.NoPersistence) {
		return nil, skiff.Errorf(skiff.KindInvalid, "leave out --max-memory, --eviction and --no-persistence",
			"max_memory, eviction and no_persistence are settings of Redis, not of %s", spec.Type)
	}
	if spec.Eviction != "" && !slices.Contains(skiff.RedisEvictionPolicies, spec.Eviction) {
		return nil, skiff.Errorf(skiff.KindInvalid, "the policies are "+strings.Join(skiff.RedisEvictionPolicies, ", "),
			"unknown eviction policy %q", spec.Eviction)
	}
	if spec.MaxMemory != 0 && spec.MaxMemory < 1<<20 {
		return nil, skiff.Errorf(skiff.KindInvalid, "give at least 1mb, e.g. --max-memory 64mb",
			"max_memory %d bytes is too small for a Redis server", spec.MaxMemory)
	}
	if spec.HA && spec.Type != skiff.AddonRedis {
		return nil, skiff.Errorf(skiff.KindInvalid, "take scheduled backups instead: skiff backups schedule -a "+app+" --at 02:00",
			"ha (a replica on another node) is for redis add-ons, not %s", spec.Type)
	}
	return spec, nil
}

// destroyAddon is the job of a destroy, which the app's name must
// confirm.
func (a *API) destroyAddon(r *http.Request, app skiff.App, req *skiff.AddonRequest) error {
	ad, err := a.addon(r.Context(), app.Name, r.PathValue("addon"))
	if err != nil {
		return err
	}
	req.Addon, req.Confirm = ad.Name, r.URL.Query().Get("confirm")
	if req.Confirm != app.Name {
		return skiff.Errorf(skiff.KindInvalid, "to go ahead, run: skiff addons destroy "+ad.Name+" -a "+app.Name+" --confirm "+app.Name,
			"destroying %s deletes its data for good (a last backup is taken first)", ad.Name)
	}
	return nil
}

// rotateCredentials is the job of a rotation of the add-on's password.
func (a *API) rotateCredentials(r *http.Request, app skiff.App, req *skiff.AddonRequest) error {
	ad, err := a.addon(r.Context(), app.Name, r.PathValue("addon"))
	req.Addon = ad.Name
	return err
}

func (a *API) setBackupSchedule(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	var body skiff.BackupScheduleRequest
	if err := readJSON(r, &body); err != nil {
		writeError(w, err)
		return
	}
	at, err := skiff.NormalizeBackupAt(body.At)
	if err != nil {
		writeError(w, err)
		return
	}
	a.changeBackupSchedule(w, r, at)
}

func (a *API) unsetBackupSchedule(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	a.changeBackupSchedule(w, r, "")
}

// changeBackupSchedule sets an add-on's daily backup time ("" for none):
// the addons role's scheduler reads it from the record.
func (a *API) changeBackupSchedule(w http.ResponseWriter, r *http.Request, at string) {
	app, ad, err := a.appAddon(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ad, _, err = a.st.Addons.Update(r.Context(), ad.Key(), func(ad *skiff.Addon) error {
		if ad.BackupAt == at {
			return store.ErrNoChange
		}
		ad.BackupAt, ad.UpdatedAt = at, time.Now().UTC()
		return nil
	})
	if errors.Is(err, skiff.ErrNotFound) {
		err = noAddon(app.Name, r.PathValue("addon"))
	}
	if err != nil {
		writeError(w, err)
		return
	}
	a.writeAddon(w, r, app.Name, ad)
}

// writeAddon answers with the view of app's add-on ad.
func (a *API) writeAddon(w http.ResponseWriter, r *http.Request, app string, ad skiff.Addon) {
	cfg, _, err := a.st.Config(r.Context(), app)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.addonView(r.Context(), ad, cfg))
}

// appAddon loads the app and the add-on named in the request path.
func (a *API) appAddon(r *http.Request) (skiff.App, skiff.Addon, error) {
	app, _, err := a.app(r)
	if err != nil {
		return app, skiff.Addon{}, err
	}
	ad, err := a.addon(r.Context(), app.Name, r.PathValue("addon"))
	return app, ad, err
}

// addon loads app's add-on name.
func (a *API) addon(ctx context.Context, app, name string) (skiff.Addon, error) {
	if err := skiff.ValidateAddonName(name); err != nil {
		return skiff.Addon{}, err
	}
	ad, _, err := a.st.Addons.Get(ctx, skiff.AddonKey(app, name))
	if errors.Is(err, skiff.ErrNotFound) {
		return ad, noAddon(app, name)
	}
	return ad, err
}

func noAddon(app, name string) error {
	return skiff.Errorf(skiff.KindNotFound, "skiff addons -a "+app+" lists its add-ons", "%s has no add-on named %s", app, name)
}

// addonsOf lists app's add-ons by name.
func (a *API) addonsOf(ctx context.Context, app string) ([]skiff.Addon, error) {
	addons, err := a.st.Addons.Values(ctx, app+".*")
	if err != nil {
		return nil, err
	}
	sort.Slice(addons, func(i, j int) bool { return addons[i].Name < addons[j].Name })
	return addons, nil
}

// onlyAddon is app's add-on named name, or its only one when name is
// empty.
func (a *API) onlyAddon(ctx context.Context, app, name string) (skiff.Addon, error) {
	if name != "" {
		return a.addon(ctx, app, name)
	}
	addons, err := a.addonsOf(ctx, app)
	if err != nil {
		return skiff.Addon{}, err
	}
	switch len(addons) {
	case 0:
		return skiff.Addon{}, skiff.Errorf(skiff.KindNotFound, "create one: skiff addons create postgres -a "+app, "%s has no add-ons", app)
	case 1:
		return addons[0], nil
	}
	names := make([]string, len(addons))
	for i, ad := range addons {
		names[i] = ad.Name
	}
	return skiff.Addon{}, skiff.Errorf(skiff.KindInvalid, "name one of them: "+strings.Join(names, ", "),
		"%s has %d add-ons", app, len(addons))
}

// addonView is what the API shows of an add-on: its URL from the app's
// config, the node its server runs on if the service host said, never
// its password.
func (a *API) addonView(ctx context.Context, ad skiff.Addon, cfg map[string]string) skiff.AddonView {
	var node string
	if ad.Service != "" {
		if st, _, err := a.st.ServiceStat.Get(ctx, ad.Service); err == nil {
			node = st.Node
		}
	}
	return ad.View(cfg[ad.ConfigVar], node)
}

// jobRoute is the route of an add-on job of op on the request's app: job
// checks the request and completes the job's request (the add-on, and
// what else op needs), or says why not; then addonJob runs it.
func (a *API) jobRoute(op string, job func(r *http.Request, app skiff.App, req *skiff.AddonRequest) error) func(http.ResponseWriter, *http.Request, skiff.Token) {
	return func(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
		app, _, err := a.app(r)
		if err != nil {
			writeError(w, err)
			return
		}
		req := skiff.AddonRequest{Op: op, App: app.Name, Actor: tok.User}
		if err := job(r, app, &req); err != nil {
			writeError(w, err)
			return
		}
		a.addonJob(w, r, req)
	}
}

// addonJob hands req to the addons role and streams its progress and
// result. The stream starts with the first line or the result: an error
// before it (no node of the addons role running) is an ordinary error
// answer.
func (a *API) addonJob(w http.ResponseWriter, r *http.Request, req skiff.AddonRequest) {
	req.ID = secret.Token(12)
	a.streams.Add(1)
	defer a.streams.Done()
	var s *deploy.Stream
	stream := func() *deploy.Stream {
		if s == nil {
			s = deploy.NewStream(w)
		}
		return s
	}
	log := a.log.With("app", req.App, "addon", req.Addon, "op", req.Op, "job", req.ID, "user", req.Actor)
	log.Info("add-on job")
	fail := func(err error) {
		if s == nil {
			writeError(w, err)
		} else {
			s.Fail(err)
		}
	}
	res, err := a.st.AddonJob(r.Context(), req, func(line string) { stream().Line("%s", line) })
	if err != nil {
		log.Warn("add-on job not followed", "err", err)
		fail(err)
		return
	}
	if res.Error != "" {
		kind := res.Code
		if kind == "" {
			kind = skiff.KindFailed
		}
		log.Info("add-on job failed", "err", res.Error)
		fail(&skiff.Error{Kind: kind, Message: res.Error, Hint: res.Hint})
		return
	}
	msg := skiff.StreamMessage{Type: "result", Backup: res.Backup}
	if res.Addon != nil {
		// Config may have changed with the job (a URL set or rotated).
		cfg, _, err := a.st.Config(r.Context(), req.App)
		if err != nil {
			cfg = nil
		}
		v := a.addonView(r.Context(), *res.Addon, cfg)
		msg.Addon = &v
	}
	_ = stream().Send(msg, true)
}
