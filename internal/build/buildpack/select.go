package buildpack

import (
	"strings"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Builtins are the built-in buildpacks in the order they are detected.
func Builtins() []Buildpack { return []Buildpack{Go(), Nodejs(), Python(), Static()} }

// Named returns the buildpack an app names (SKIFF_BUILDPACK or app.json):
// a built-in by its name, or a Heroku v2 buildpack by its git URL or its
// path on the server.
func Named(name string) (Buildpack, error) {
	name = strings.TrimSpace(name)
	for _, b := range Builtins() {
		if b.Name() == name || name == "heroku/"+b.Name() || name == "golang" && b.Name() == "go" {
			return b, nil
		}
	}
	if IsV2Source(name) {
		return HerokuV2(name), nil
	}
	return nil, skiff.Errorf(skiff.KindFailed,
		"name go, nodejs, python or static, or a Heroku v2 buildpack by its git URL (https://…, file://…) or its absolute path on the server",
		"unknown buildpack %q", name)
}

// Detect returns the first built-in buildpack that recognises the tree at
// dir, or nil.
func Detect(dir string) (Buildpack, error) {
	for _, b := range Builtins() {
		ok, err := b.Detect(dir)
		if err != nil {
			return nil, err
		}
		if ok {
			return b, nil
		}
	}
	return nil, nil
}
