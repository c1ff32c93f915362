package build

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/skiff-paas/skiff/internal/schedule"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// appJSON is what the builder reads of an app.json manifest (Heroku's
// format, with Dokku's health checks).
type appJSON struct {
	Buildpacks []struct {
		URL string `json:"url"`
	} `json:"buildpacks"`
	Formation map[string]struct {
		Quantity *int `json:"quantity"`
	} `json:"formation"`
	Scripts struct {
		// Predeploy runs in the built tree, in the build's sandbox, before
		// the image is packed; its failure fails the build.
		Predeploy  string `json:"predeploy"`
		Postdeploy string `json:"postdeploy"`
		// Release is the release phase when the Procfile has no release
		// type.
		Release string `json:"release"`
	} `json:"scripts"`
	Env         map[string]envVar `json:"env"`
	Healthcheck struct {
		Path string `json:"path"`
	} `json:"healthcheck"`
	Healthchecks map[string][]struct {
		Type string `json:"type"`
		Path string `json:"path"`
	} `json:"healthchecks"`
	// Static maps URL path prefixes to directories of the app that the
	// router serves itself: {"/assets": "public/assets"} or
	// {"/assets": {"dir": "public/assets", "cache_control": "…"}}.
	Static map[string]staticMount `json:"static"`
	// Cron lists commands to run on a schedule, as Dokku's app.json
	// does: [{"command": "…", "schedule": "*/5 * * * *"}].
	Cron []skiff.CronJob `json:"cron"`
}

// staticMount is an app.json static entry: a directory, or an object
// with the directory and the files' Cache-Control.
type staticMount struct {
	Dir          string `json:"dir"`
	CacheControl string `json:"cache_control"`
}

func (m *staticMount) UnmarshalJSON(data []byte) error {
	var s string
	if json.Unmarshal(data, &s) == nil {
		m.Dir = s
		return nil
	}
	type plain staticMount
	return json.Unmarshal(data, (*plain)(m))
}

// envVar is an app.json env entry: a string, or an object with a value
// and whether it is required.
type envVar struct {
	Value    string `json:"value"`
	Required bool   `json:"required"`
}

func (v *envVar) UnmarshalJSON(data []byte) error {
	var s string
	if json.Unmarshal(data, &s) == nil {
		v.Value = s
		return nil
	}
	type plain envVar
	return json.Unmarshal(data, (*plain)(v))
}

// readAppJSON reads dir/app.json; a missing file is an empty manifest.
func readAppJSON(dir string) (appJSON, error) {
	var m appJSON
	data, err := os.ReadFile(filepath.Join(dir, "app.json"))
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, skiff.Errorf(skiff.KindFailed, "fix app.json: it must be a JSON object as Heroku's app.json describes",
			"app.json is not valid: %v", err)
	}
	for t := range m.Formation {
		if err := skiff.ValidateProcessType(t); err != nil {
			return m, skiff.Errorf(skiff.KindFailed, "name process types of the Procfile in app.json's formation",
				"app.json formation: invalid process type %q", t)
		}
		if q := m.Formation[t].Quantity; q != nil && (*q < 0 || *q > 100) {
			return m, skiff.Errorf(skiff.KindFailed, "give a quantity from 0 to 100", "app.json formation: quantity %d for %s", *q, t)
		}
	}
	if _, err := m.staticMounts(); err != nil {
		return m, err
	}
	if m.Cron, err = cronJobs(m.Cron); err != nil {
		return m, err
	}
	for k := range m.Env {
		if err := skiff.ValidateConfigKey(k); err != nil {
			return m, skiff.Errorf(skiff.KindFailed, "fix the name in app.json's env", "app.json env: %v", err)
		}
	}
	return m, nil
}

// staticMounts are app.json's static entries, checked, longest prefix
// first.
func (m appJSON) staticMounts() ([]skiff.StaticMount, error) {
	var out []skiff.StaticMount
	for prefix, sm := range m.Static {
		bad := func(hint, format string, a ...any) error {
			return skiff.Errorf(skiff.KindFailed, hint, "app.json static %q: "+format, append([]any{prefix}, a...)...)
		}
		clean := path.Clean(prefix)
		if !strings.HasPrefix(prefix, "/") || clean != strings.TrimSuffix(prefix, "/") && prefix != "/" ||
			strings.ContainsAny(prefix, "?#%* \t\r\n") {
			return nil, bad(`give a URL path prefix like "/assets"`, "not a clean URL path")
		}
		dir := path.Clean(strings.TrimPrefix(sm.Dir, "/"))
		if sm.Dir == "" || !filepath.IsLocal(filepath.FromSlash(dir)) && dir != "." {
			return nil, bad(`name a directory of the app, like "public/assets"`, "directory %q is not inside the app", sm.Dir)
		}
		if strings.ContainsAny(sm.CacheControl, "\r\n\x00") {
			return nil, bad("give a Cache-Control value on one line", "invalid cache_control")
		}
		out = append(out, skiff.StaticMount{Path: clean, Dir: dir, CacheControl: sm.CacheControl})
	}
	sort.Slice(out, func(i, j int) bool {
		if len(out[i].Path) != len(out[j].Path) {
			return len(out[i].Path) > len(out[j].Path)
		}
		return out[i].Path < out[j].Path
	})
	return out, nil
}

// checkStaticDirs checks that the static mounts' directories are
// directories of the built tree at dir, not links out of it.
func checkStaticDirs(dir string, mounts []skiff.StaticMount) error {
	if len(mounts) == 0 {
		return nil
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, m := range mounts {
		info, err := root.Stat(m.Dir)
		if err != nil || !info.IsDir() {
			return skiff.Errorf(skiff.KindFailed, "create "+m.Dir+"/ in the app (or in its build), or change app.json's static",
				"app.json static %q: %s is not a directory of the app", m.Path, m.Dir)
		}
	}
	return nil
}

// buildpack is the buildpack app.json names, if any.
func (m appJSON) buildpack() string {
	if len(m.Buildpacks) == 0 {
		return ""
	}
	return m.Buildpacks[0].URL
}

// healthCheck is the web health check path, from either form.
func (m appJSON) healthCheck() string {
	for _, c := range m.Healthchecks["web"] {
		if c.Path != "" && (c.Type == "" || c.Type == "startup" || c.Type == "readiness") {
			return c.Path
		}
	}
	return m.Healthcheck.Path
}

// env returns the default values of app.json's env, and an error naming
// the required variables that have neither a value nor a config var.
func (m appJSON) env(config map[string]string) (map[string]string, error) {
	out := map[string]string{}
	var missing []string
	for k, v := range m.Env {
		if v.Value != "" {
			out[k] = v.Value
		} else if _, set := config[k]; v.Required && !set {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, skiff.Errorf(skiff.KindFailed, fmt.Sprintf("set them: skiff config set %s=…", strings.Join(missing, "=… ")),
			"app.json requires config vars that are not set: %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// noWebWanted reports whether app.json declares a formation without web:
// an app meant to run no web process.
func (m appJSON) noWebWanted() bool {
	if len(m.Formation) == 0 {
		return false
	}
	w, ok := m.Formation["web"]
	return !ok || w.Quantity != nil && *w.Quantity == 0
}

// cronJobs checks app.json's cron entries and returns them cleaned up.
func cronJobs(jobs []skiff.CronJob) ([]skiff.CronJob, error) {
	out, err := schedule.CheckJobs(jobs)
	var e *skiff.Error
	if errors.As(err, &e) {
		return nil, skiff.Errorf(skiff.KindFailed, e.Hint, "app.json cron: %s", e.Message)
	}
	return out, err
}
