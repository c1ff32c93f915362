package skiff

import "strings"

// Key-value buckets of platform state.
const (
	BucketApps        = "apps"
	BucketReleases    = "releases"
	BucketConfig      = "config"
	BucketFormation   = "formation"
	BucketAssignments = "assignments"
	BucketInstances   = "instances"
	BucketNodes       = "nodes"
	BucketDomains     = "domains"
	BucketTokens      = "tokens"
	BucketKeys        = "keys"
	BucketUIDs        = "uids" // user IDs given to apps, so that no two share one
	BucketLocks       = "locks"
	BucketCerts       = "certs"          // TLS certificates by hostname (DomainKey)
	BucketACME        = "acme"           // the ACME client's account and certificates, sealed
	BucketCron        = "cron"           // claims of scheduled jobs' slots, and their last runs (CronRun)
	BucketAddons      = "addons"         // add-ons by AddonKey
	BucketServices    = "services"       // database servers wanted on nodes, by ServiceKey
	BucketServiceStat = "service_status" // service hosts' reports, by service name
	BucketBackups     = "backups"        // backup records by BackupKey
	BucketUsageHours  = "usage_hours"    // each app's usage per hour (UsageHour by UsageHourKey)
	BucketWebhooks    = "webhooks"       // Webhook by WebhookKey
	BucketDeliveries  = "deliveries"     // WebhookStatus by webhook key: the last deliveries
	BucketAlertRules  = "alert_rules"    // AlertRule by AlertRuleKey
	BucketAlerts      = "alerts"         // Alert (pending, firing, resolved) by Alert.Key
	BucketDrains      = "drains"         // Drain by DrainKey, and DrainStatus by DrainStatusKey
)

// Object stores.
const (
	ObjectSources = "sources" // uploaded source archives, "<app>/<build id>.tar.gz"
	ObjectSlugs   = "slugs"   // built images, "<app>/<digest>"
	ObjectBackups = "backups" // add-on backups by BackupKey
)

// Streams.
const (
	StreamLogs   = "LOGS"   // subjects logs.<app>.<source>.<process>
	StreamEvents = "EVENTS" // subjects events.<app>.<type>
	StreamUsage  = "USAGE"  // subjects usage.<app>.<instance id>
	// StreamMetrics holds RouterSample on metrics.<app>.router.<node>
	// (metrics.go); the points folded from samples are in the streams of
	// Resolutions.
	StreamMetrics = "METRICS"
	// StreamDeliveries is the work queue of webhook and email deliveries
	// (DeliveryJob), subjects deliveries.<target>.
	StreamDeliveries = "DELIVERIES"
)

// Log sources: what wrote a log line.
const (
	SourceApp      = "app"      // an app process's stdout and stderr
	SourceRouter   = "router"   // the router's access log
	SourcePlatform = "platform" // the platform's own messages about the app
)

// LogSubject is the subject a log line of app from source and process
// ("web.1", "build", "api") is published on.
func LogSubject(app, source, process string) string {
	return "logs." + app + "." + source + "." + process
}

// ParseLogSubject splits a log subject into its app, source and process.
func ParseLogSubject(subject string) (app, source, process string, ok bool) {
	parts := strings.SplitN(subject, ".", 4)
	if len(parts) != 4 || parts[0] != "logs" {
		return "", "", "", false
	}
	return parts[1], parts[2], parts[3], true
}

// EventSubject is the subject an event of app is published on; the
// platform's own events (App "") go under PlatformScope.
func EventSubject(app, typ string) string { return "events." + Scope(app) + "." + typ }

// PlatformScope stands for the platform, rather than one app, in subjects
// and keys: no app can be named so.
const PlatformScope = "_platform"

// Scope is app, or PlatformScope for "".
func Scope(app string) string {
	if app == "" {
		return PlatformScope
	}
	return app
}

// Subjects of requests between roles.
const (
	// SubjectBuild takes a BuildRequest; a builder in the queue group
	// replies with a BuildAccepted at once, then publishes output on
	// BuildOutputSubject and the result on BuildDoneSubject.
	SubjectBuild  = "skiff.build.request"
	QueueBuilders = "builders"
	// SubjectRun takes a one-off process's request (package oneoff); an
	// agent in the queue group starts it and answers.
	SubjectRun  = "skiff.run.request"
	QueueAgents = "agents"
	// SubjectUsage takes a UsageRequest; a node of the metrics role in
	// the queue group answers with a UsageAnswer.
	SubjectUsage = "skiff.usage.request"
	QueueUsage   = "usage"
)

// BuildOutputSubject carries a build's output, one line per message.
func BuildOutputSubject(id string) string { return "skiff.build." + id + ".out" }

// BuildDoneSubject carries a build's BuildResult.
func BuildDoneSubject(id string) string { return "skiff.build." + id + ".done" }

// Role names, as given to --roles.
const (
	RoleBus       = "bus"
	RoleAPI       = "api"
	RoleSSH       = "ssh"
	RoleBuilder   = "builder"
	RoleScheduler = "scheduler"
	RoleAgent     = "agent"
	RoleRouter    = "router"
	// RoleMetrics keeps logs, metrics, usage and bills, and raises alerts.
	RoleMetrics = "metrics"
)
