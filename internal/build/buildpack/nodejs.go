package buildpack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Nodejs returns the buildpack for Node.js apps: an app with a
// package.json at its root. It installs dependencies with npm (npm ci
// when there is a lockfile), runs the build script, then removes the
// devDependencies, as Heroku's Node.js buildpack does.
//
// node and npm are the ones on the sandbox's PATH. npm's cache lives in
// CacheDir/nodejs/npm; it is content-addressed and checked by integrity,
// so a cache from another npm version is safe to use. node_modules is not
// cached: native addons built for one node must not meet another.
func Nodejs() Buildpack { return nodePack{} }

type nodePack struct{}

func (nodePack) Name() string { return "nodejs" }

func (nodePack) Detect(dir string) (bool, error) { return hasFile(dir, "package.json") }

// packageJSON is what a build needs of package.json. Fields of the wrong
// type are left empty: npm reports them in its own words.
type packageJSON struct {
	Scripts     map[string]string
	EnginesNode string
	DevDeps     bool
}

func (p nodePack) Compile(ctx context.Context, b *Build) (Result, error) {
	fmt.Fprintln(b.Out, "-----> Node.js app detected")
	pkg, err := readPackageJSON(filepath.Join(b.Dir, "package.json"))
	if err != nil {
		return Result{}, err
	}
	cache := filepath.Join(b.CacheDir, "nodejs", "npm")
	if err := b.MkdirAll(ctx, cache); err != nil {
		return Result{}, fmt.Errorf("npm cache: %w", err)
	}
	env := nodeEnv(b.Env, cache)

	nodeV, err := sandboxOutput(ctx, b, env, "node", "--version")
	if err != nil {
		return Result{}, err
	}
	npmV, err := sandboxOutput(ctx, b, env, "npm", "--version")
	if err != nil {
		return Result{}, err
	}
	fmt.Fprintf(b.Out, "-----> Using node %s, npm %s\n", nodeV, npmV)
	if pkg.EnginesNode != "" {
		if ok, known := nodeSatisfies(pkg.EnginesNode, nodeV); known && !ok {
			fmt.Fprintf(b.Out, " !     package.json asks for node %q (engines.node) but this builder has node %s; the app may not work as expected\n",
				pkg.EnginesNode, nodeV)
		}
	}

	production := strings.ToLower(nodeConfig(b.Env, "production"))
	quiet := []string{"--no-audit", "--no-fund", "--no-update-notifier"}

	if pkg.Scripts["heroku-prebuild"] != "" {
		if err := npmRun(ctx, b, env, "heroku-prebuild"); err != nil {
			return Result{}, err
		}
	}

	install := "install"
	lock, err := nodeLockfile(b.Dir)
	if err != nil {
		return Result{}, err
	}
	if lock != "" {
		install = "ci"
	} else {
		for _, other := range []string{"yarn.lock", "pnpm-lock.yaml"} {
			if ok, _ := isFile(filepath.Join(b.Dir, other)); ok {
				fmt.Fprintf(b.Out, " !     %s found but no package-lock.json: Skiff builds with npm, which ignores %s\n", other, other)
			}
		}
	}
	args := append([]string{install}, quiet...)
	// Build tools are devDependencies: install them for the build (even
	// with NODE_ENV=production) and prune them afterwards, unless the app
	// asks for production dependencies only.
	if production == "true" {
		args = append(args, "--omit=dev")
	} else {
		args = append(args, "--include=dev")
	}
	fmt.Fprintf(b.Out, "-----> Installing dependencies (npm %s)\n", install)
	if out, err := sandboxRun(ctx, b, env, "npm", args...); err != nil {
		return Result{}, npmError(ctx, "npm "+install, err, out)
	}

	if script := nodeBuildScript(pkg.Scripts); script != "" {
		if err := npmRun(ctx, b, env, script); err != nil {
			return Result{}, err
		}
	}

	switch {
	case !pkg.DevDeps || production == "true":
		// No devDependencies were installed.
	case production == "false":
		fmt.Fprintln(b.Out, "-----> Keeping devDependencies (NPM_CONFIG_PRODUCTION=false)")
	default:
		fmt.Fprintln(b.Out, "-----> Pruning devDependencies")
		if out, err := sandboxRun(ctx, b, env, "npm", append([]string{"prune", "--omit=dev"}, quiet...)...); err != nil {
			return Result{}, npmError(ctx, "npm prune", err, out)
		}
	}

	if pkg.Scripts["heroku-cleanup"] != "" {
		if err := npmRun(ctx, b, env, "heroku-cleanup"); err != nil {
			return Result{}, err
		}
	}

	var res Result
	server, err := isFile(filepath.Join(b.Dir, "server.js"))
	if err != nil {
		return Result{}, err
	}
	// npm start runs node server.js when there is no start script.
	if pkg.Scripts["start"] != "" || server {
		res.Processes = map[string]string{"web": "npm start"}
	}
	return res, nil
}

// nodeBuildScript is the script that builds the app: heroku-postbuild
// when there is one (it replaces build, as on Heroku), else build.
func nodeBuildScript(scripts map[string]string) string {
	for _, s := range []string{"heroku-postbuild", "build"} {
		if scripts[s] != "" {
			return s
		}
	}
	return ""
}

func npmRun(ctx context.Context, b *Build, env []string, script string) error {
	fmt.Fprintf(b.Out, "-----> Running: npm run %s\n", script)
	if out, err := sandboxRun(ctx, b, env, "npm", "run", script); err != nil {
		return npmError(ctx, "npm run "+script, err, out)
	}
	return nil
}

// npmError turns a failed npm command into an error for the user. npm's
// output has been streamed already; the hint names the likeliest fix.
func npmError(ctx context.Context, what string, err error, output string) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return fmt.Errorf("%s: %w", what, err)
	}
	has := func(s ...string) bool {
		for _, x := range s {
			if strings.Contains(output, x) {
				return true
			}
		}
		return false
	}
	switch {
	case has("can only install packages when your package.json and package-lock.json", "in sync"):
		return skiff.Errorf(skiff.KindFailed, "run npm install, commit package-lock.json, and push again",
			"%s failed: package-lock.json does not match package.json", what)
	case has("E404", "404 Not Found"):
		return skiff.Errorf(skiff.KindFailed,
			"check the dependency names in package.json and package-lock.json (and NPM_CONFIG_REGISTRY, if the app uses its own registry)",
			"%s failed: a dependency was not found in the registry", what)
	case has("ETARGET", "No matching version found"):
		return skiff.Errorf(skiff.KindFailed, "check the dependency versions in package.json and push again",
			"%s failed: no version of a dependency matches package.json", what)
	case has("ENOTFOUND", "ECONNREFUSED", "ETIMEDOUT", "EAI_AGAIN", "ECONNRESET"):
		return skiff.Errorf(skiff.KindFailed, "check NPM_CONFIG_REGISTRY in the app's config, or push again later",
			"%s failed: the npm registry could not be reached", what)
	}
	return skiff.Errorf(skiff.KindFailed, "fix the errors above and push again", "%s failed", what)
}

// nodeLockfile names the app's npm lockfile, if it has one.
func nodeLockfile(dir string) (string, error) {
	for _, name := range []string{"npm-shrinkwrap.json", "package-lock.json"} {
		ok, err := isFile(filepath.Join(dir, name))
		if err != nil || ok {
			return name, err
		}
	}
	return "", nil
}

// nodeDenyEnv are config vars the build does not pass to npm: the
// sandbox owns the paths, and npm's own paths stay in the tree and the
// cache.
var nodeDenyEnv = map[string]bool{
	"PATH": true, "HOME": true, "TMPDIR": true, "TMP": true, "TEMP": true, "PWD": true, "SHELL": true,
	"USER": true, "LOGNAME": true, "GIT_DIR": true, "CPATH": true, "CPPATH": true, "LIBRARY_PATH": true,
	"npm_config_cache": true, "npm_config_prefix": true, "npm_config_userconfig": true,
	"npm_config_globalconfig": true, "npm_config_logs_dir": true,
}

// nodeEnv is the environment of npm and the app's scripts: the app's
// config (build scripts read it, e.g. for API URLs baked into a bundle),
// less what the sandbox or the cache own.
func nodeEnv(appEnv map[string]string, cache string) []string {
	var env []string
	for k, v := range appEnv {
		lower := strings.ToLower(k)
		if strings.HasPrefix(lower, "npm_config_") {
			// npm reads its settings case-insensitively.
			k = lower
		}
		if nodeDenyEnv[k] || strings.HasPrefix(k, "LD_") {
			continue
		}
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return append(env,
		"npm_config_cache="+cache,
		"npm_config_update_notifier=false",
		"npm_config_fund=false",
		"npm_config_audit=false",
		"npm_config_progress=false",
		// npm's debug logs would only name files the user cannot read.
		"npm_config_logs_max=0",
	)
}

// nodeConfig is the npm setting name from the app's config, in either
// spelling (NPM_CONFIG_PRODUCTION, npm_config_production).
func nodeConfig(appEnv map[string]string, name string) string {
	for k, v := range appEnv {
		if strings.EqualFold(k, "npm_config_"+name) {
			return v
		}
	}
	return ""
}

func readPackageJSON(file string) (packageJSON, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return packageJSON{}, fmt.Errorf("read package.json: %w", err)
	}
	return parsePackageJSON(data)
}

// parsePackageJSON checks that package.json is JSON (npm's own message
// for that is an unhelpful "Unexpected token") and reads what the build
// needs.
func parsePackageJSON(data []byte) (packageJSON, error) {
	var pkg packageJSON
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			line, col := skiff.LineColumn(data, syn.Offset)
			err = fmt.Errorf("line %d, column %d: %s", line, col, syn.Error())
		case errors.As(err, &typ):
			err = errors.New("it must be a JSON object")
		}
		return pkg, &skiff.Error{Kind: skiff.KindFailed, Message: "package.json is not valid JSON", Err: err,
			Hint: "fix package.json (strict JSON: no comments, no trailing commas) and push again"}
	}
	json.Unmarshal(top["scripts"], &pkg.Scripts)
	var engines map[string]any
	json.Unmarshal(top["engines"], &engines)
	pkg.EnginesNode, _ = engines["node"].(string)
	var dev map[string]any
	json.Unmarshal(top["devDependencies"], &dev)
	pkg.DevDeps = len(dev) > 0
	return pkg, nil
}

var nodeRangeRe = regexp.MustCompile(`^(>=|\^|~|=|v)?\s*(\d+)(\.(\d+|x|\*)){0,2}$`)

// nodeSatisfies reports whether node version v (v20.11.1) satisfies the
// engines.node range r, judging by major versions only. known is false
// when r has a form it does not understand (<, hyphen ranges…), so that a
// build warns only when it is sure.
func nodeSatisfies(r, v string) (ok, known bool) {
	major, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(v, "v"), ".", 2)[0])
	if err != nil {
		return false, false
	}
	for _, alt := range strings.Split(r, "||") {
		alt = strings.TrimSpace(alt)
		if alt == "" || alt == "*" || alt == "x" || alt == "latest" || alt == "lts" {
			return true, true
		}
		m := nodeRangeRe.FindStringSubmatch(alt)
		if m == nil {
			return false, false
		}
		want, _ := strconv.Atoi(m[2])
		if m[1] == ">=" && major >= want || m[1] != ">=" && major == want {
			return true, true
		}
	}
	return false, true
}
