package skiff

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Add-on types.
const (
	AddonPostgres = "postgres"
	AddonRedis    = "redis"
)

// Plans of a PostgreSQL add-on: a database on the platform's shared
// server, or a server of the app's own. A Redis add-on is always a server
// of its own ("dedicated").
const (
	PlanShared    = "shared"
	PlanDedicated = "dedicated"
)

// AddonState is where an add-on is in its life.
type AddonState string

// Add-on states.
const (
	AddonCreating   AddonState = "creating"
	AddonReady      AddonState = "ready"
	AddonFailed     AddonState = "failed"
	AddonDestroying AddonState = "destroying"
)

// Addon is a database or key-value store attached to an app: a record in
// the addons bucket under AddonKey(app, name).
type Addon struct {
	Name  string     `json:"name"` // postgres-1, redis-1
	App   string     `json:"app"`
	Type  string     `json:"type"` // AddonPostgres, AddonRedis
	Plan  string     `json:"plan"` // PlanShared, PlanDedicated
	State AddonState `json:"state"`
	// Error says why the add-on failed.
	Error string `json:"error,omitempty"`
	// ConfigVar is the app's config var holding the add-on's URL:
	// DATABASE_URL, REDIS_URL, or TYPE_N_URL for a second one.
	ConfigVar string `json:"config_var"`
	// Service is the server the add-on lives on: the shared PostgreSQL
	// server's name (SharedPostgres) or the add-on's own server.
	Service string `json:"service,omitempty"`
	// Addr is host:port of the server the add-on lives on now: what its
	// URL names and what `skiff pg psql` tunnels to.
	Addr string `json:"addr,omitempty"`
	// Replica is the service of a Redis replica (HA), if any.
	Replica string `json:"replica,omitempty"`
	HA      bool   `json:"ha,omitempty"`
	// Database and User name the PostgreSQL database and role, or the
	// Redis ACL user.
	Database string `json:"database,omitempty"`
	User     string `json:"user,omitempty"`
	// Password is the user's password, sealed by the platform key.
	Password []byte `json:"password,omitempty"`
	// MaxMemory and Eviction bound a Redis server (bytes; a Redis
	// maxmemory-policy); NoPersistence turns its AOF off.
	MaxMemory     int64  `json:"max_memory,omitempty"`
	Eviction      string `json:"eviction,omitempty"`
	NoPersistence bool   `json:"no_persistence,omitempty"`
	// BackupAt is the daily backup time (UTC, "02:00"), empty for none.
	BackupAt string `json:"backup_at,omitempty"`
	// Usage is the latest measure of the add-on, taken every minute.
	Usage     *AddonUsage `json:"usage,omitempty"`
	CreatedAt time.Time   `json:"created_at"`
	UpdatedAt time.Time   `json:"updated_at"`
	// CredentialsRotatedAt is when the password last changed.
	CredentialsRotatedAt time.Time `json:"credentials_rotated_at,omitzero"`
}

// AddonUsage is a measure of an add-on, for metering.
type AddonUsage struct {
	Time time.Time `json:"time"`
	// Bytes is the database's size (PostgreSQL) or the memory used (Redis).
	Bytes int64 `json:"bytes"`
	// Queries and QuerySeconds are the statements run and the time they
	// took since the add-on was created (pg_stat_statements), or the
	// commands processed (Redis).
	Queries      int64   `json:"queries"`
	QuerySeconds float64 `json:"query_seconds,omitempty"`
	Connections  int     `json:"connections"`
}

// Key is the add-on's key in the addons bucket.
func (a Addon) Key() string { return AddonKey(a.App, a.Name) }

// AddonKey is the key of app's add-on name in the addons bucket.
func AddonKey(app, name string) string { return app + "." + name }

var addonNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)

// ValidateAddonName reports why name cannot name an add-on, or nil.
func ValidateAddonName(name string) error {
	if !addonNameRE.MatchString(name) || strings.HasSuffix(name, "-") {
		return Errorf(KindInvalid, "add-on names are 1 to 40 lower-case letters, digits and dashes, starting with a letter, e.g. postgres-1",
			"invalid add-on name %q", name)
	}
	return nil
}

// DefaultConfigVar is the config var of the n-th (from 1) add-on of a
// type: DATABASE_URL and REDIS_URL first, then POSTGRES_2_URL….
func DefaultConfigVar(typ string, n int) string {
	first := map[string]string{AddonPostgres: "DATABASE_URL", AddonRedis: "REDIS_URL"}[typ]
	if n <= 1 && first != "" {
		return first
	}
	return fmt.Sprintf("%s_%d_URL", strings.ToUpper(typ), n)
}

// Services: the database servers the platform runs on agent nodes.

// SharedPostgres is the name of the shared PostgreSQL server's service.
const SharedPostgres = "pg-shared"

// Service is a database server the platform runs on one node with a
// volume of its own there: the shared PostgreSQL server, an add-on's own
// PostgreSQL or Redis server, or a Redis replica. The addons role writes
// it under ServiceKey(node, name); the node's service host runs it and
// reports a ServiceStatus.
type Service struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // AddonPostgres, AddonRedis
	Node string `json:"node"`
	// App owns the service; empty for the shared server.
	App   string `json:"app,omitempty"`
	Addon string `json:"addon,omitempty"`
	// Password is the superuser's (PostgreSQL) or the default user's
	// (Redis) password, sealed by the platform key.
	Password []byte `json:"password"`
	// Redis settings: memory limit, eviction policy, AOF off, and the
	// primary service this one replicates (empty for a primary).
	MaxMemory     int64  `json:"max_memory,omitempty"`
	Eviction      string `json:"eviction,omitempty"`
	NoPersistence bool   `json:"no_persistence,omitempty"`
	ReplicaOf     string `json:"replica_of,omitempty"`
	// Generation changes when the service must be restarted.
	Generation int       `json:"generation"`
	CreatedAt  time.Time `json:"created_at"`
}

// Key is the service's key in the services bucket.
func (s Service) Key() string { return ServiceKey(s.Node, s.Name) }

// ServiceKey is the key of a service in the services bucket: a service
// host watches the prefix of its node.
func ServiceKey(node, name string) string { return node + "." + name }

// ServiceState is the observed state of a service.
type ServiceState string

// Service states.
const (
	ServiceStarting ServiceState = "starting"
	ServiceUp       ServiceState = "up"
	ServiceFailed   ServiceState = "failed" // exited; restarted after a pause
)

// ServiceStatus is a service host's report on a service, in the
// service_status bucket under the service's name.
type ServiceStatus struct {
	Name  string       `json:"name"`
	Node  string       `json:"node"`
	State ServiceState `json:"state"`
	// Addr is host:port where clients reach the server; the port is
	// chosen when the service first starts and kept afterwards.
	Addr string `json:"addr,omitempty"`
	// Role is "primary" or "replica" (Redis).
	Role       string    `json:"role,omitempty"`
	Generation int       `json:"generation"`
	Restarts   int       `json:"restarts"`
	Error      string    `json:"error,omitempty"`
	Since      time.Time `json:"since"`
}

// Backups.

// BackupState is where a backup is.
type BackupState string

// Backup states.
const (
	BackupRunning BackupState = "running"
	BackupDone    BackupState = "done"
	BackupFailed  BackupState = "failed"
)

// Formats of backup files, and the bytes each begins with.
const (
	FormatPostgres = "pg_dump-custom"
	FormatRedis    = "redis-rdb"
	MagicPostgres  = "PGDMP"
	MagicRedis     = "REDIS"
)

// Why a backup was taken.
const (
	BackupManual      = "manual"
	BackupScheduled   = "scheduled"
	BackupDestroy     = "before-destroy"
	BackupRestore     = "before-restore"
	BackupUploaded    = "uploaded" // made elsewhere: skiff backups upload
	BackupVerifyOK    = "ok"
	BackupVerifyError = "failed"
)

// Backup is one captured copy of an add-on's data: a record in the
// backups bucket under BackupKey(app, id), its bytes in the backups
// object store under the same key.
type Backup struct {
	ID    string      `json:"id"` // b001, a001 (scheduled)
	App   string      `json:"app"`
	Addon string      `json:"addon"`
	Type  string      `json:"type"` // the add-on's type
	Kind  string      `json:"kind"` // BackupManual, BackupScheduled…
	State BackupState `json:"state"`
	Error string      `json:"error,omitempty"`
	// Format is the file's format: "pg_dump-custom" or "redis-rdb".
	Format string `json:"format"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	// Contents is what the backup holds, measured when it was taken:
	// rows per table (PostgreSQL, "schema.table") or keys per database
	// (Redis, "db0"). Verification compares a restore with it.
	Contents   map[string]int64 `json:"contents,omitempty"`
	StartedAt  time.Time        `json:"started_at"`
	FinishedAt time.Time        `json:"finished_at,omitzero"`
	// Verification of the backup by restoring it into a scratch server.
	Verified   string    `json:"verified,omitempty"` // BackupVerifyOK, BackupVerifyError
	VerifiedAt time.Time `json:"verified_at,omitzero"`
	VerifyNote string    `json:"verify_note,omitempty"`
}

// Key is the backup's key in the backups bucket and object store.
func (b Backup) Key() string { return BackupKey(b.App, b.ID) }

// BackupKey is the key of app's backup id.
func BackupKey(app, id string) string { return app + "." + id }

// Subjects of the addons role.
const (
	// SubjectAddons takes an AddonRequest; a node of the addons role in
	// the queue group replies with an AddonAccepted at once, then
	// publishes progress on AddonOutputSubject and the result on
	// AddonDoneSubject.
	SubjectAddons = "skiff.addons.request"
	QueueAddons   = "addons"
	// RoleAddons runs the add-on managers and backups.
	RoleAddons = "addons"
)

// AddonOutputSubject carries an add-on job's progress, one line per message.
func AddonOutputSubject(id string) string { return "skiff.addons." + id + ".out" }

// AddonDoneSubject carries an add-on job's AddonResult.
func AddonDoneSubject(id string) string { return "skiff.addons." + id + ".done" }

// Operations of an AddonRequest.
const (
	AddonOpCreate  = "create"
	AddonOpDestroy = "destroy"
	AddonOpRotate  = "rotate"
	AddonOpCapture = "capture"
	AddonOpRestore = "restore"
	AddonOpVerify  = "verify"
)

// AddonWithApp is the Kind of an add-on's destroy as part of its app's.
const AddonWithApp = "with-app"

// AddonRequest asks the addons role to do one job on an add-on.
type AddonRequest struct {
	ID    string `json:"id"` // the job's id, for its subjects
	Op    string `json:"op"`
	App   string `json:"app"`
	Addon string `json:"addon"`
	Actor string `json:"actor"`
	// Backup names the backup to restore or verify; for a restore it may
	// be another app's backup (APP.ID) of an add-on of the same type.
	Backup string `json:"backup,omitempty"`
	// Kind is why a capture is taken (BackupManual by default); for a
	// destroy, AddonWithApp says the app goes too, with its backups, so
	// none is taken first.
	Kind string `json:"kind,omitempty"`
	// Spec is the add-on to create: Type and Plan, and optionally Name,
	// ConfigVar, HA and the Redis settings.
	Spec *Addon `json:"spec,omitempty"`
	// Confirm must name the app for a destroy or a restore.
	Confirm string `json:"confirm,omitempty"`
}

// AddonAccepted is the addons role's immediate answer to a request.
type AddonAccepted struct {
	Node string `json:"node"`
}

// AddonResult ends an add-on job.
type AddonResult struct {
	Addon  *Addon  `json:"addon,omitempty"`
	Backup *Backup `json:"backup,omitempty"`
	// Error, Code and Hint say why the job failed.
	Error string `json:"error,omitempty"`
	Code  Kind   `json:"code,omitempty"`
	Hint  string `json:"hint,omitempty"`
}

// Bodies of the add-on and backup routes of the HTTP API (docs/api.md).

// TunnelUpgrade is the protocol GET /v1/apps/APP/addons/NAME/tunnel
// switches its connection to: the bytes of a TCP connection to the
// add-on's server, both ways, as they are.
const TunnelUpgrade = "skiff-tunnel"

// AddonCreateRequest is the body of POST /v1/apps/{app}/addons.
type AddonCreateRequest struct {
	Type string `json:"type"`           // AddonPostgres, AddonRedis
	Plan string `json:"plan,omitempty"` // default: shared (PostgreSQL), dedicated (Redis)
	// Name names the add-on (default: TYPE-N); As is the config var
	// that gets its URL (default: DefaultConfigVar).
	Name string `json:"name,omitempty"`
	As   string `json:"as,omitempty"`
	HA   bool   `json:"ha,omitempty"`
	// Redis settings.
	MaxMemory     ByteSize `json:"max_memory,omitempty"`
	Eviction      string   `json:"eviction,omitempty"`
	NoPersistence bool     `json:"no_persistence,omitempty"`
}

// AddonPlans are the plans of each add-on type, the default first.
var AddonPlans = map[string][]string{
	AddonPostgres: {PlanShared, PlanDedicated},
	AddonRedis:    {PlanDedicated},
}

// RedisEvictionPolicies are the values of Redis's maxmemory-policy.
var RedisEvictionPolicies = []string{"noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
	"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"}

// ByteSize is a size in bytes that a JSON body may give as a number or
// as a string with a unit, "64mb" (see ParseByteSize).
type ByteSize int64

// UnmarshalJSON takes a number of bytes or a string for ParseByteSize.
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	s := strings.Trim(string(data), `"`)
	if s == "null" {
		return nil
	}
	n, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = ByteSize(n)
	return nil
}

// ParseByteSize reads a size such as 1048576, 512kb, 64mb or 1gb (units
// of 1024, in any case, with or without the b; kib, mib and gib too).
func ParseByteSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30},
		{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}} {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	var n int64
	if _, err := fmt.Sscanf(t, "%d", &n); err != nil || fmt.Sprint(n) != t || n < 0 || n > (1<<50)/mult {
		return 0, Errorf(KindInvalid, "give a number of bytes, or one with a unit: 64mb, 1gb", "invalid size %q", s)
	}
	return n * mult, nil
}

// AddonView is an add-on as the API shows it: never its password, but
// the URL the app's config var holds.
type AddonView struct {
	Name      string     `json:"name"`
	App       string     `json:"app"`
	Type      string     `json:"type"`
	Plan      string     `json:"plan"`
	State     AddonState `json:"state"`
	Error     string     `json:"error,omitempty"`
	ConfigVar string     `json:"config_var"`
	// URL is the value of the app's ConfigVar: how the app connects.
	URL  string `json:"url,omitempty"`
	Addr string `json:"addr,omitempty"`
	// Node is the node the add-on's server runs on, when known.
	Node          string      `json:"node,omitempty"`
	HA            bool        `json:"ha,omitempty"`
	Replica       string      `json:"replica,omitempty"`
	MaxMemory     int64       `json:"max_memory,omitempty"`
	Eviction      string      `json:"eviction,omitempty"`
	NoPersistence bool        `json:"no_persistence,omitempty"`
	BackupAt      string      `json:"backup_at,omitempty"`
	Usage         *AddonUsage `json:"usage,omitempty"`
	CreatedAt     time.Time   `json:"created_at"`
	// CredentialsRotatedAt is when the password last changed.
	CredentialsRotatedAt time.Time `json:"credentials_rotated_at,omitzero"`
}

// View is what the API shows of a: its URL and node given, its password
// left out.
func (a Addon) View(url, node string) AddonView {
	return AddonView{Name: a.Name, App: a.App, Type: a.Type, Plan: a.Plan, State: a.State, Error: a.Error,
		ConfigVar: a.ConfigVar, URL: url, Addr: a.Addr, Node: node, HA: a.HA, Replica: a.Replica,
		MaxMemory: a.MaxMemory, Eviction: a.Eviction, NoPersistence: a.NoPersistence, BackupAt: a.BackupAt,
		Usage: a.Usage, CreatedAt: a.CreatedAt, CredentialsRotatedAt: a.CredentialsRotatedAt}
}

// BackupScheduleRequest is the body of PUT
// /v1/apps/{app}/addons/{addon}/backup-schedule.
type BackupScheduleRequest struct {
	At string `json:"at"` // "02:00", UTC
}

// NormalizeBackupAt checks a daily backup time, HH:MM in UTC, and
// returns it with two-digit hours ("2:00" is "02:00").
func NormalizeBackupAt(at string) (string, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(at))
	if err != nil {
		return "", Errorf(KindInvalid, "give the time of day in UTC as HH:MM, e.g. --at 02:00", "invalid backup time %q", at)
	}
	return t.Format("15:04"), nil
}

// BackupCaptureRequest is the body of POST /v1/apps/{app}/backups; an
// empty Addon is the app's only add-on.
type BackupCaptureRequest struct {
	Addon string `json:"addon,omitempty"`
}

// BackupRestoreRequest is the body of POST
// /v1/apps/{app}/backups/{id}/restore: the backup goes into Addon (the
// app's only add-on when empty). FromApp names another app whose backup
// it is. Confirm must be the app's name.
type BackupRestoreRequest struct {
	Addon   string `json:"addon,omitempty"`
	FromApp string `json:"from_app,omitempty"`
	Confirm string `json:"confirm"`
}

// BackupSHA256Header carries a backup's SHA-256 (hex) on its download.
const BackupSHA256Header = "X-Skiff-SHA256"

// BackupExt is the file extension of a backup's file: .dump for a
// pg_dump archive (pg_restore reads it), .rdb for a Redis snapshot.
func BackupExt(b Backup) string {
	switch {
	case b.Format == "redis-rdb" || b.Format == "" && b.Type == AddonRedis:
		return ".rdb"
	case b.Format == "pg_dump-custom" || b.Format == "" && b.Type == AddonPostgres:
		return ".dump"
	}
	return ".backup"
}

// TokenRequest is the body of POST /v1/tokens: a token limited to Scope.
type TokenRequest struct {
	Scope string `json:"scope"` // ScopeBackupsRead
}

// ScopedToken answers POST /v1/tokens: the new token, shown once.
type ScopedToken struct {
	User  string `json:"user"`
	Scope string `json:"scope"`
	Token string `json:"token"`
}
