package skiff

import "time"

// This file holds the bodies of the HTTP API that are not plain domain
// records. docs/api.md describes the routes.

// APIError is the body of every error response.
type APIError struct {
	Error string `json:"error"`
	Code  Kind   `json:"code"`
	Hint  string `json:"hint,omitempty"`
}

// WhoAmI answers GET /v1/whoami.
type WhoAmI struct {
	User  string `json:"user"`
	Admin bool   `json:"admin"`
	// Scope is the token's limit, if it has one (ScopeBackupsRead).
	Scope string `json:"scope,omitempty"`
}

// CreateAppRequest is the body of POST /v1/apps.
type CreateAppRequest struct {
	Name string `json:"name"`
}

// AppInfo answers GET /v1/apps/{app} and lists in GET /v1/apps.
type AppInfo struct {
	Name      string    `json:"name"`
	Owner     string    `json:"owner,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	URL       string    `json:"url"`
	// GitURL is where git push deploys the app, when the ssh role runs.
	GitURL    string         `json:"git_url,omitempty"`
	Current   int            `json:"current,omitempty"` // serving release
	Latest    int            `json:"latest,omitempty"`  // newest release, whatever its status
	Domains   []string       `json:"domains"`
	Formation map[string]int `json:"formation"`
	ImageSize int64          `json:"image_size,omitempty"`
	// Instances counts the app's instances by state.
	Instances map[InstanceState]int `json:"instances"`
	// Maintenance is on while the router answers for the app with a 503
	// page.
	Maintenance bool `json:"maintenance,omitempty"`
}

// CertRequest is the body of POST /v1/apps/{app}/certs: a certificate
// chain and its private key, PEM encoded.
type CertRequest struct {
	CertPEM string `json:"cert_pem"`
	KeyPEM  string `json:"key_pem"`
}

// CertView is a certificate as the API shows it: never its key.
type CertView struct {
	Hostname string    `json:"hostname"`
	Names    []string  `json:"names"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"not_after"`
	AddedAt  time.Time `json:"added_at"`
}

// MaintenanceChange is the body of PUT /v1/apps/{app}/maintenance.
type MaintenanceChange struct {
	Enabled bool `json:"enabled"`
}

// ConfigChange is the body of PATCH /v1/apps/{app}/config.
type ConfigChange struct {
	Set   map[string]string `json:"set,omitempty"`
	Unset []string          `json:"unset,omitempty"`
}

// ConfigResponse answers GET and PATCH /v1/apps/{app}/config. Release is the
// release the change created, 0 when none was (no deploy yet, or no change).
type ConfigResponse struct {
	Config  map[string]string `json:"config"`
	Version int               `json:"version"`
	Release int               `json:"release,omitempty"`
}

// ScaleRequest is the body of PATCH /v1/apps/{app}/formation.
type ScaleRequest struct {
	Quantity map[string]int `json:"quantity"`
	// Size sets process types' sizes (1x, 2x, 4x, 8x); a change replaces
	// the type's processes one by one.
	Size map[string]string `json:"size,omitempty"`
}

// FormationEntry is one process type in GET /v1/apps/{app}/formation.
type FormationEntry struct {
	Type     string `json:"type"`
	Command  string `json:"command"`
	Quantity int    `json:"quantity"`
	Size     string `json:"size"`
}

// ProcessView is one line of GET /v1/apps/{app}/ps: a desired instance and
// what its agent last reported of it.
type ProcessView struct {
	Name       string        `json:"name"` // web.1
	Type       string        `json:"type"`
	ID         string        `json:"id"`
	State      InstanceState `json:"state"` // "pending" until an agent reports
	Release    int           `json:"release"`
	Node       string        `json:"node"`
	Addr       string        `json:"addr,omitempty"`
	Command    string        `json:"command"`
	Since      time.Time     `json:"since,omitempty"`
	Restarts   int           `json:"restarts"`
	CrashLoop  bool          `json:"crash_loop,omitempty"`
	ExitReason string        `json:"exit_reason,omitempty"`
	Usage      *Usage        `json:"usage,omitempty"`
}

// StatePending is shown for an instance no agent has reported yet.
const StatePending InstanceState = "pending"

// RestartRequest is the body of POST /v1/apps/{app}/restart; an empty Type
// restarts every process type.
type RestartRequest struct {
	Type string `json:"type,omitempty"`
}

// RollbackRequest is the body of POST /v1/apps/{app}/rollback; Version 0
// means the release before the current one.
type RollbackRequest struct {
	Version int `json:"version,omitempty"`
}

// ReleaseView is a release as the API shows it: without its sealed config.
type ReleaseView struct {
	Version       int               `json:"version"`
	Description   string            `json:"description"`
	Status        ReleaseStatus     `json:"status"`
	StatusReason  string            `json:"status_reason,omitempty"`
	Current       bool              `json:"current"`
	Image         Image             `json:"image"`
	Processes     map[string]string `json:"processes"`
	ConfigVersion int               `json:"config_version"`
	CreatedAt     time.Time         `json:"created_at"`
	CreatedBy     string            `json:"created_by,omitempty"`
	FinishedAt    time.Time         `json:"finished_at,omitempty"`
}

// View strips the sealed config from r.
func (r Release) View(current int) ReleaseView {
	return ReleaseView{
		Version: r.Version, Description: r.Description, Status: r.Status, StatusReason: r.StatusReason,
		Current: r.Version == current, Image: r.Image, Processes: r.Processes, ConfigVersion: r.ConfigVersion,
		CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy, FinishedAt: r.FinishedAt,
	}
}

// DomainRequest is the body of POST /v1/apps/{app}/domains.
type DomainRequest struct {
	Hostname string `json:"hostname"`
}

// StreamMessage is one line of a streamed response (deploys, and the
// jobs of add-ons and backups): output lines, then one result or error.
type StreamMessage struct {
	Type    string        `json:"type"` // "line", "result" or "error"
	Line    string        `json:"line,omitempty"`
	Release int           `json:"release,omitempty"`
	Status  ReleaseStatus `json:"status,omitempty"`
	URL     string        `json:"url,omitempty"`
	// Addon and Backup are what an add-on job's result is about: the
	// add-on (as the API shows it, never its password) and the backup
	// taken, restored or verified.
	Addon  *AddonView `json:"addon,omitempty"`
	Backup *Backup    `json:"backup,omitempty"`
	Error  string     `json:"error,omitempty"`
	Code   Kind       `json:"code,omitempty"`
	Hint   string     `json:"hint,omitempty"`
}

// LogLine is one line of GET /v1/apps/{app}/logs.
type LogLine struct {
	Time    time.Time `json:"time"`
	Source  string    `json:"source"`  // app, router, platform
	Process string    `json:"process"` // web.1, build, scheduler...
	Line    string    `json:"line"`
}

// KeyRequest is the body of POST /v1/keys: a public key in authorized_keys
// form, and an optional name (default: the key's comment).
type KeyRequest struct {
	PublicKey string `json:"public_key"`
	Name      string `json:"name,omitempty"`
}

// UserRequest is the body of POST /v1/users.
type UserRequest struct {
	Name  string `json:"name"`
	Admin bool   `json:"admin,omitempty"`
}

// UserToken answers POST /v1/users: the new user's API token, shown once.
type UserToken struct {
	User  string `json:"user"`
	Admin bool   `json:"admin"`
	Token string `json:"token"`
}

// RunRequest is the body of POST /v1/apps/APP/runs: a one-off process in
// the app's current release.
type RunRequest struct {
	Command string `json:"command"`
	// TTY gives the process a terminal of Cols x Rows.
	TTY  bool `json:"tty,omitempty"`
	Cols int  `json:"cols,omitempty"`
	Rows int  `json:"rows,omitempty"`
	// Env is added to the process's environment, over its config.
	Env map[string]string `json:"env,omitempty"`
	// Detach runs it in the background, its output in the app's logs.
	Detach bool `json:"detach,omitempty"`
	// Size is the process size (1x when empty).
	Size string `json:"size,omitempty"`
}

// RunStarted describes a started one-off process: the answer to a
// detached run, and the Skiff-Run-* headers of an attached one.
type RunStarted struct {
	Name    string `json:"name"` // run.1234
	Node    string `json:"node"`
	Release int    `json:"release"`
}

// RunUpgrade is the protocol an attached run's connection switches to:
// frames of package oneoff both ways.
const RunUpgrade = "skiff-run"

// HealthCheckView answers GET, PUT and DELETE /v1/apps/APP/healthcheck.
type HealthCheckView struct {
	// Path is the health check in effect for the next release; empty
	// when a TCP connect is enough.
	Path string `json:"path"`
	// Source says where it comes from: "app" (skiff healthcheck set),
	// "app.json", or empty.
	Source string `json:"source"`
	// Release is the release made by a change, if one was.
	Release int `json:"release,omitempty"`
}

// HealthCheckChange is the body of PUT /v1/apps/APP/healthcheck.
type HealthCheckChange struct {
	Path string `json:"path"`
}

// RouterChange is the body of PATCH /v1/apps/{app}/router: the settings
// to change; absent ones stay as they are.
type RouterChange struct {
	Balance       *string `json:"balance,omitempty"`
	Sticky        *bool   `json:"sticky,omitempty"`
	HTTPSRedirect *bool   `json:"https_redirect,omitempty"`
	// ErrorPage and MaintenancePage: "" removes the page.
	ErrorPage       *string `json:"error_page,omitempty"`
	MaintenancePage *string `json:"maintenance_page,omitempty"`
}

// NodeInfo is a node as `skiff nodes` shows it.
type NodeInfo struct {
	Node
	// Status is up, suspect, dead, draining or drained.
	Status string `json:"status"`
	// Reserved is the memory the node's assigned instances reserve;
	// Assigned how many there are.
	Reserved int64 `json:"reserved"`
	Assigned int   `json:"assigned"`
	// Leader is set on the node whose scheduler leads.
	Leader bool `json:"leader,omitempty"`
}

// NodeSuspectAfter is how long a node may be silent before skiff nodes
// calls it suspect (the scheduler's default).
const NodeSuspectAfter = 3 * time.Second

// NodeStatus says what n's record and last heartbeat say of it at now,
// given how many instances are assigned to it.
func NodeStatus(n Node, assigned int, now time.Time) string {
	switch {
	case n.State == NodeDead:
		return string(NodeDead)
	case now.Sub(n.Heartbeat) > NodeSuspectAfter:
		return string(NodeSuspect)
	case n.Drain && assigned > 0:
		return "draining"
	case n.Drain:
		return "drained"
	}
	return string(NodeUp)
}
