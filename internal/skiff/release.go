package skiff

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Image is a built app: a read-only SquashFS file kept in the slugs object
// store under Object, named by the SHA-256 of its bytes.
type Image struct {
	Digest string `json:"digest"` // "sha256:<hex>"
	Size   int64  `json:"size"`
	Object string `json:"object"` // name in the slugs store
}

// ReleaseStatus is where a release is in its rollout.
type ReleaseStatus string

// Release statuses. Pending and Deploying are the live ones; the rest are
// final.
const (
	ReleasePending    ReleaseStatus = "pending"    // created, not yet picked up by the scheduler
	ReleaseDeploying  ReleaseStatus = "deploying"  // instances starting
	ReleaseSucceeded  ReleaseStatus = "succeeded"  // serving, or served before a newer release
	ReleaseFailed     ReleaseStatus = "failed"     // never became healthy; the previous release kept serving
	ReleaseSuperseded ReleaseStatus = "superseded" // a newer release came before this one was up
)

// Final reports whether a release in status s will not change status again.
func (s ReleaseStatus) Final() bool {
	return s == ReleaseSucceeded || s == ReleaseFailed || s == ReleaseSuperseded
}

// Release is an immutable, numbered combination of an image, a config and
// the process types to run. Deploys, config changes and rollbacks each make a
// new one. Only the status fields change after creation, written by the
// scheduler.
type Release struct {
	App         string            `json:"app"`
	Version     int               `json:"version"`
	Description string            `json:"description"`
	Image       Image             `json:"image"`
	Processes   map[string]string `json:"processes"` // process type -> command
	// ConfigVersion and ConfigSealed are the app's config at release time,
	// sealed with the platform's secret key.
	ConfigVersion int       `json:"config_version"`
	ConfigSealed  []byte    `json:"config_sealed,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	CreatedBy     string    `json:"created_by,omitempty"`
	// Buildpack names what built the image (go, nodejs, python, static…).
	Buildpack string `json:"buildpack,omitempty"`
	// BuildKey digests everything the build read: the source tree, the
	// buildpack and the config. A build with the key of an earlier release
	// reuses its image.
	BuildKey string `json:"build_key,omitempty"`
	// HealthCheck is the path the web process must answer with a 2xx or
	// 3xx before it takes traffic, and keep answering while it runs: the
	// app's own setting (skiff healthcheck set), else app.json's; empty
	// means a TCP connect is enough.
	HealthCheck string `json:"health_check,omitempty"`
	// ManifestHealthCheck is app.json's health check path, which the
	// app's setting overrides.
	ManifestHealthCheck string `json:"manifest_health_check,omitempty"`
	// Env holds default environment variables (from app.json's env);
	// config vars of the same name win.
	Env map[string]string `json:"env,omitempty"`
	// Static lists the URL path prefixes the router serves straight from
	// directories of the image (app.json's static).
	Static []StaticMount `json:"static,omitempty"`
	// Cron lists the jobs to run on a schedule (app.json's cron): a
	// rollback brings back its release's.
	Cron []CronJob `json:"cron,omitempty"`
	// ReleaseCommand is the release phase (the Procfile's release type,
	// or app.json's scripts.release): it runs once per release, as a
	// one-off process, before the release's processes start; if it fails,
	// so does the release, and the previous one keeps serving.
	ReleaseCommand string `json:"release_command,omitempty"`
	// PhaseDone is set once the release command succeeded.
	PhaseDone bool `json:"release_phase_done,omitempty"`

	Status        ReleaseStatus `json:"status"`
	StatusReason  string        `json:"status_reason,omitempty"`
	DeployStarted time.Time     `json:"deploy_started,omitempty"`
	FinishedAt    time.Time     `json:"finished_at,omitempty"`
}

// ReleaseProcess is the Procfile type of the release phase: it is not
// scaled like the others, it runs once per release.
const ReleaseProcess = "release"

// Derive is a new release of r's image, processes, config and settings,
// to be numbered and stored: what a config change, a rollback or a new
// health check makes. The caller changes what differs.
func (r Release) Derive(description, actor string) Release {
	n := r
	n.Version, n.Description, n.CreatedBy, n.CreatedAt = 0, description, actor, time.Time{}
	n.Status, n.StatusReason, n.DeployStarted, n.FinishedAt, n.PhaseDone = "", "", time.Time{}, time.Time{}, false
	n.Processes = maps.Clone(r.Processes)
	n.Env = maps.Clone(r.Env)
	n.Cron = slices.Clone(r.Cron)
	return n
}

// EffectiveHealthCheck is the health check path of a release of app with
// manifest (app.json's path): the app's own setting wins.
func EffectiveHealthCheck(app App, manifest string) string {
	if app.HealthCheck != "" {
		return app.HealthCheck
	}
	return manifest
}

// StaticMount is a URL path prefix whose files the router serves from a
// directory of the image, without asking the app: a GET or HEAD of
// Path/NAME answers Dir/NAME if it is a file, and goes to the app
// otherwise.
type StaticMount struct {
	// Path is the URL path prefix, like /assets: it starts with a slash
	// and has no trailing one (but "/" itself).
	Path string `json:"path"`
	// Dir is the directory of the image, relative to its root, like
	// public/assets.
	Dir string `json:"dir"`
	// CacheControl is the Cache-Control of its files; empty means
	// DefaultStaticCacheControl.
	CacheControl string `json:"cache_control,omitempty"`
}

// DefaultStaticCacheControl lets caches keep a file but ask, by its ETag,
// whether it changed before each use: right for files whose names do not
// change with their content.
const DefaultStaticCacheControl = "public, max-age=0, must-revalidate"

// StaticCommand is the command of the web process of a static site: the
// platform serves the image's files itself, without an app process.
const StaticCommand = "skiff-static"

// Label is the release's version as users write it: "v3".
func (r Release) Label() string { return VersionLabel(r.Version) }

// ProcessTypes lists the release's process types, sorted with web first.
func (r Release) ProcessTypes() []string {
	return SortedTypes(r.Processes)
}

// SortedTypes lists the keys of a map of process types, web first and
// then by name.
func SortedTypes[V any](m map[string]V) []string {
	types := make([]string, 0, len(m))
	for t := range m {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool { return TypeLess(types[i], types[j]) })
	return types
}

// TypeLess orders process types: web first, then by name.
func TypeLess(a, b string) bool {
	if (a == "web") != (b == "web") {
		return a == "web"
	}
	return a < b
}

// VersionLabel formats a release version as "v3".
func VersionLabel(v int) string { return "v" + strconv.Itoa(v) }

// ParseVersion accepts "v3" or "3".
func ParseVersion(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimPrefix(s, "v"), "V"))
	if err != nil || n < 1 {
		return 0, Errorf(KindInvalid, "name a release as vN, e.g. v3; skiff releases lists them", "invalid release %q", s)
	}
	return n, nil
}

// ReleaseKey is the key of a release in the releases bucket.
func ReleaseKey(app string, version int) string { return fmt.Sprintf("%s.%d", app, version) }

// Formation is how many instances of each process type an app wants, and the
// restart generation of each type: bumping a generation replaces the type's
// instances.
type Formation struct {
	App         string         `json:"app"`
	Quantity    map[string]int `json:"quantity,omitempty"`
	Generations map[string]int `json:"generations,omitempty"`
	// Sizes are the process types' sizes; DefaultSize when unset.
	Sizes map[string]string `json:"sizes,omitempty"`
}

// Size is the size of proc's processes.
func (f Formation) Size(proc string) string {
	if s := f.Sizes[proc]; s != "" {
		return s
	}
	return DefaultSize
}

// Process sizes. A process of size Nx gets N times the memory, CPU weight
// and process count of the 1x size, which is the agent's
// --instance-memory (512 MiB by default), CPU weight 100 and 512
// processes.
const DefaultSize = "1x"

var sizeFactors = map[string]int64{"1x": 1, "2x": 2, "4x": 4, "8x": 8}

// SizeFactor is how many times the 1x size a process of size is; 1 for an
// empty or unknown size.
func SizeFactor(size string) int64 {
	if f, ok := sizeFactors[size]; ok {
		return f
	}
	return 1
}

// ValidateSize reports why size cannot be a process size, or nil.
func ValidateSize(size string) error {
	if _, ok := sizeFactors[size]; !ok {
		return Errorf(KindInvalid, "sizes are 1x (512 MiB by default), 2x, 4x and 8x, e.g. skiff scale web=2:2x",
			"invalid process size %q", size)
	}
	return nil
}

// Count is the number of instances wanted for proc: the quantity set by a
// scale, else one web instance and none of anything else, as on Heroku.
func (f Formation) Count(proc string) int {
	if q, ok := f.Quantity[proc]; ok {
		return q
	}
	if proc == "web" {
		return 1
	}
	return 0
}

// Generation is the restart generation of proc.
func (f Formation) Generation(proc string) int { return f.Generations[proc] }
