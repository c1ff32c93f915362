package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// maxQuantity bounds one process type's scale.
const maxQuantity = 100

func (a *API) formation(ctx context.Context, app string) (skiff.Formation, error) {
	f, _, err := a.st.Formations.Get(ctx, app)
	if errors.Is(err, skiff.ErrNotFound) {
		return skiff.Formation{App: app}, nil
	}
	return f, err
}

// baseRelease is the release whose process types scale and restart work
// on, or an error saying the app has none.
func (a *API) baseRelease(ctx context.Context, app skiff.App) (skiff.Release, error) {
	rels, err := a.st.ListReleases(ctx, app.Name)
	if err != nil {
		return skiff.Release{}, err
	}
	base, ok := store.BaseRelease(rels, app.Current)
	if !ok {
		return base, skiff.Errorf(skiff.KindInvalid, "deploy it first: skiff deploy -a "+app.Name,
			"app %s has no release running", app.Name)
	}
	return base, nil
}

func (a *API) formationEntries(ctx context.Context, app skiff.App) ([]skiff.FormationEntry, error) {
	out := []skiff.FormationEntry{}
	rels, err := a.st.ListReleases(ctx, app.Name)
	if err != nil {
		return nil, err
	}
	base, ok := store.BaseRelease(rels, app.Current)
	if !ok {
		return out, nil
	}
	f, err := a.formation(ctx, app.Name)
	if err != nil {
		return nil, err
	}
	for _, t := range base.ProcessTypes() {
		out = append(out, skiff.FormationEntry{Type: t, Command: base.Processes[t], Quantity: f.Count(t), Size: f.Size(t)})
	}
	return out, nil
}

func (a *API) getFormation(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err == nil {
		var out []skiff.FormationEntry
		if out, err = a.formationEntries(r.Context(), app); err == nil {
			writeJSON(w, http.StatusOK, out)
			return
		}
	}
	writeError(w, err)
}

func (a *API) scale(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req skiff.ScaleRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if len(req.Quantity)+len(req.Size) == 0 {
		writeError(w, skiff.Errorf(skiff.KindInvalid, "skiff scale -a APP web=2", "no process types to scale"))
		return
	}
	base, err := a.baseRelease(r.Context(), app)
	if err != nil {
		writeError(w, err)
		return
	}
	types := map[string]bool{}
	for t := range req.Quantity {
		types[t] = true
	}
	for t, size := range req.Size {
		types[t] = true
		if err := skiff.ValidateSize(size); err != nil {
			writeError(w, err)
			return
		}
	}
	for t := range types {
		if _, ok := base.Processes[t]; !ok {
			writeError(w, skiff.Errorf(skiff.KindInvalid,
				fmt.Sprintf("the Procfile of %s declares: %s", base.Label(), strings.Join(base.ProcessTypes(), ", ")),
				"no process type %q in %s", t, app.Name))
			return
		}
	}
	for t, q := range req.Quantity {
		if q < 0 || q > maxQuantity {
			writeError(w, skiff.Errorf(skiff.KindInvalid, fmt.Sprintf("give a quantity from 0 to %d, e.g. %s=2", maxQuantity, t),
				"invalid quantity %d for %s", q, t))
			return
		}
	}
	_, err = a.st.Formations.Upsert(r.Context(), app.Name, func(f *skiff.Formation) error {
		f.App = app.Name
		if f.Quantity == nil {
			f.Quantity = map[string]int{}
		}
		for t, q := range req.Quantity {
			f.Quantity[t] = q
		}
		for t, size := range req.Size {
			if f.Sizes == nil {
				f.Sizes = map[string]string{}
			}
			f.Sizes[t] = size
		}
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	var parts []string
	for _, t := range skiff.SortedTypes(types) {
		part := t
		if q, ok := req.Quantity[t]; ok {
			part += fmt.Sprintf("@%d", q)
		}
		if size, ok := req.Size[t]; ok {
			part += ":" + size
		}
		parts = append(parts, part)
	}
	a.st.Emit(skiff.Event{App: app.Name, Type: skiff.EventScaled, Actor: tok.User,
		Message: fmt.Sprintf("Scaled to %s by %s", strings.Join(parts, ", "), tok.User)})
	out, err := a.formationEntries(r.Context(), app)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) restart(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req skiff.RestartRequest
	if r.ContentLength != 0 {
		if err := readJSON(r, &req); err != nil {
			writeError(w, err)
			return
		}
	}
	base, err := a.baseRelease(r.Context(), app)
	if err != nil {
		writeError(w, err)
		return
	}
	types := base.ProcessTypes()
	if req.Type != "" {
		if _, ok := base.Processes[req.Type]; !ok {
			writeError(w, skiff.Errorf(skiff.KindInvalid,
				fmt.Sprintf("the Procfile of %s declares: %s", base.Label(), strings.Join(types, ", ")),
				"no process type %q in %s", req.Type, app.Name))
			return
		}
		types = []string{req.Type}
	}
	_, err = a.st.Formations.Upsert(r.Context(), app.Name, func(f *skiff.Formation) error {
		f.App = app.Name
		if f.Generations == nil {
			f.Generations = map[string]int{}
		}
		for _, t := range types {
			f.Generations[t]++
		}
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	a.st.Emit(skiff.Event{App: app.Name, Type: skiff.EventRestarted, Actor: tok.User,
		Message: fmt.Sprintf("Restarting %s by %s", strings.Join(types, ", "), tok.User)})
	writeJSON(w, http.StatusAccepted, struct{}{})
}

func (a *API) ps(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	assigned, err := a.st.Assignments.Values(r.Context(), "*."+app.Name+".*")
	if err != nil {
		writeError(w, err)
		return
	}
	insts, err := a.st.Instances.Values(r.Context(), app.Name+".*")
	if err != nil {
		writeError(w, err)
		return
	}
	byID := map[string]skiff.Instance{}
	for _, i := range insts {
		byID[i.ID] = i
	}
	out := []skiff.ProcessView{}
	for _, as := range assigned {
		v := skiff.ProcessView{Name: as.Name(), Type: as.Proc, ID: as.ID, State: skiff.StatePending, Release: as.Release,
			Node: as.Node, Command: as.Command, Since: as.CreatedAt}
		if i, ok := byID[as.ID]; ok {
			fillView(&v, i)
			delete(byID, as.ID)
		}
		out = append(out, v)
	}
	// Instances without an assignment are on their way out.
	for _, i := range byID {
		v := skiff.ProcessView{Name: i.Name(), Type: i.Proc, ID: i.ID, Release: i.Release, Node: i.Node, Command: i.Command}
		fillView(&v, i)
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Type != b.Type {
			return skiff.TypeLess(a.Type, b.Type)
		}
		if idx := indexOf(a.Name) - indexOf(b.Name); idx != 0 {
			return idx < 0
		}
		return a.Release > b.Release
	})
	writeJSON(w, http.StatusOK, out)
}

func fillView(v *skiff.ProcessView, i skiff.Instance) {
	v.State, v.Addr, v.Since, v.Restarts, v.CrashLoop, v.ExitReason = i.State, i.Addr, i.Since, i.Restarts, i.CrashLoop, i.ExitReason
	v.Usage = i.Usage
}

func indexOf(name string) int {
	n := 0
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		fmt.Sscan(name[i+1:], &n)
	}
	return n
}
