package api

import (
	"fmt"
	"net/http"
	"sort"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// maxConfigValue bounds one config value; the environment of a process is
// not the place for files.
const maxConfigValue = 32 << 10

func (a *API) getConfig(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	vars, version, err := a.st.Config(r.Context(), app.Name)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, skiff.ConfigResponse{Config: vars, Version: version})
}

func (a *API) patchConfig(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var ch skiff.ConfigChange
	if err := readJSON(r, &ch); err != nil {
		writeError(w, err)
		return
	}
	if len(ch.Set) == 0 && len(ch.Unset) == 0 {
		writeError(w, skiff.Errorf(skiff.KindInvalid, "skiff config set -a APP KEY=VALUE", "no config vars to set or unset"))
		return
	}
	for k, v := range ch.Set {
		if err := skiff.ValidateConfigKey(k); err != nil {
			writeError(w, err)
			return
		}
		if len(v) > maxConfigValue {
			writeError(w, skiff.Errorf(skiff.KindTooLarge, "keep files in the app or in an add-on, not in config",
				"config var %s is larger than %d KiB", k, maxConfigValue>>10))
			return
		}
	}
	for _, k := range ch.Unset {
		if err := skiff.ValidateConfigKey(k); err != nil {
			writeError(w, err)
			return
		}
	}
	var set, unset []string
	vars, version, changed, err := a.st.UpdateConfig(r.Context(), app.Name, func(vars map[string]string) error {
		set, unset = nil, nil
		for k, v := range ch.Set {
			if old, ok := vars[k]; !ok || old != v {
				vars[k] = v
				set = append(set, k)
			}
		}
		for _, k := range ch.Unset {
			if _, ok := vars[k]; ok {
				delete(vars, k)
				unset = append(unset, k)
			}
		}
		if len(set)+len(unset) == 0 {
			return store.ErrNoChange
		}
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	resp := skiff.ConfigResponse{Config: vars, Version: version}
	if !changed {
		// The same change again: an earlier try may have stored it and
		// failed before its release was made (the bus failing over
		// between the two writes). Then the release is made now.
		for k := range ch.Set {
			set = append(set, k)
		}
		unset = ch.Unset
	}
	sort.Strings(set)
	sort.Strings(unset)
	desc := describeConfigChange(set, unset)
	if changed {
		a.st.Emit(skiff.Event{App: app.Name, Type: skiff.EventConfigChanged, Actor: tok.User, Message: desc + " by " + tok.User})
	}
	rel, made, err := a.st.ReleaseConfig(r.Context(), app, vars, version, desc, tok.User, !changed)
	if err != nil {
		writeError(w, err)
		return
	}
	if made {
		resp.Release = rel.Version
	}
	writeJSON(w, http.StatusOK, resp)
}

func describeConfigChange(set, unset []string) string {
	var parts []string
	if len(set) > 0 {
		parts = append(parts, fmt.Sprintf("Set %s config %s", joinSorted(set), plural(len(set), "var", "vars")))
	}
	if len(unset) > 0 {
		parts = append(parts, fmt.Sprintf("Remove %s config %s", joinSorted(unset), plural(len(unset), "var", "vars")))
	}
	if len(parts) == 2 {
		return parts[0] + "; " + parts[1]
	}
	return parts[0]
}
