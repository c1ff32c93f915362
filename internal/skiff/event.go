package skiff

import "time"

// Event is a user-visible action or happening, kept in the EVENTS stream and
// shown in the app's logs as a platform line.
type Event struct {
	Time     time.Time `json:"time"`
	App      string    `json:"app"`
	Type     string    `json:"type"`
	Message  string    `json:"message"`
	Release  int       `json:"release,omitempty"`
	Instance string    `json:"instance,omitempty"` // "web.1"
	Actor    string    `json:"actor,omitempty"`
	// Component names who reports it in the logs: "api", "build",
	// "scheduler", or an instance name such as "web.1".
	Component string `json:"component"`
	// Node names the node an event is about (node.dead, node.drain).
	Node string `json:"node,omitempty"`
	// Alert is set on alert.firing and alert.resolved (alert.go).
	Alert *AlertNotice `json:"alert,omitempty"`
}

// Event types.
const (
	EventAppCreated        = "app.created"
	EventAppDestroyed      = "app.destroyed"
	EventBuildStarted      = "build.started"
	EventBuildSucceeded    = "build.succeeded"
	EventBuildFailed       = "build.failed"
	EventReleaseCreated    = "release.created"
	EventReleaseDeployed   = "release.deployed"
	EventReleaseFailed     = "release.failed"
	EventReleaseSuperseded = "release.superseded"
	EventReleasePhase      = "release.phase"
	EventConfigChanged     = "config.changed"
	EventScaled            = "formation.scaled"
	EventRestarted         = "app.restarted"
	EventDomainAdded       = "domain.added"
	EventDomainRemoved     = "domain.removed"
	EventInstanceCrashed   = "instance.crashed"
	EventInstanceOOM       = "instance.oom" // killed over its memory limit
	EventCrashLoop         = "instance.crash_loop"
	EventMaintenance       = "app.maintenance"
	EventCertAdded         = "cert.added"
	EventCertRemoved       = "cert.removed"
	EventNodeDead          = "node.dead"
	EventNodeDrain         = "node.drain"
	EventInstanceMoved     = "instance.moved"
	EventAddonCreated      = "addon.created"
	EventAddonDestroyed    = "addon.destroyed"
	EventAddonRotated      = "addon.credentials_rotated"
	EventAddonFailover     = "addon.failover"
	EventBackupCaptured    = "backup.captured"
	EventBackupFailed      = "backup.failed"
	EventBackupRestored    = "backup.restored"
	EventBackupVerified    = "backup.verified"
	EventBackupVerifyFail  = "backup.verify_failed"
	EventRollback          = "release.rollback"
	EventAlertFiring       = "alert.firing"
	EventAlertResolved     = "alert.resolved"
)

// BuildRequest asks a builder to turn an uploaded source archive into an
// image and a release.
type BuildRequest struct {
	ID          string `json:"id"`
	App         string `json:"app"`
	Source      string `json:"source"` // object name in the sources store
	Description string `json:"description"`
	Actor       string `json:"actor,omitempty"`
}

// BuildAccepted is a builder's immediate reply to a BuildRequest.
type BuildAccepted struct {
	Builder string `json:"builder"`
}

// BuildResult ends a build: a release on success, a message and hint on
// failure.
type BuildResult struct {
	ID      string `json:"id"`
	Release int    `json:"release,omitempty"`
	Image   Image  `json:"image"`
	Error   string `json:"error,omitempty"`
	Hint    string `json:"hint,omitempty"`
}
