package skiff

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// App is a named application. Its code and settings live in releases; the
// app itself records only which release serves traffic.
type App struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// Current is the version of the release that serves traffic, 0 before
	// the first successful deploy. Only the scheduler writes it.
	Current int `json:"current,omitempty"`
	// Owner is the user who created the app. Only the owner and admins may
	// see or change it.
	Owner string `json:"owner,omitempty"`
	// UID is the user ID the app's builds run as, given at its first
	// build and never shared with another app.
	UID int `json:"uid,omitempty"`
	// HealthCheck is the path its web processes must answer, set with
	// skiff healthcheck set; it overrides app.json's.
	HealthCheck string `json:"health_check,omitempty"`
	// Maintenance makes the router answer the app's requests with a 503
	// page while its processes keep running.
	Maintenance bool `json:"maintenance,omitempty"`
	// Router holds how the router treats the app's requests.
	Router RouterSettings `json:"router,omitempty"`
	// Placement pins the app's instances to nodes with these labels
	// (region=eu), set with skiff placement set.
	Placement map[string]string `json:"placement,omitempty"`
	// LogRetention bounds the app's logs (zero fields: the platform's
	// defaults), set with skiff logs retention.
	LogRetention LogRetention `json:"log_retention,omitzero"`
}

// RouterSettings are an app's settings of the router.
type RouterSettings struct {
	// Balance is BalanceLeastConnections (the default) or
	// BalanceRoundRobin.
	Balance string `json:"balance,omitempty"`
	// Sticky sends a client's requests to the same backend while it is
	// up, by a cookie the router sets.
	Sticky bool `json:"sticky,omitempty"`
	// HTTPSRedirect answers plain HTTP requests with a redirect to HTTPS.
	HTTPSRedirect bool `json:"https_redirect,omitempty"`
	// ErrorPage and MaintenancePage name files of the app's image (paths
	// relative to its root, like public/503.html) that the router sends
	// instead of its own pages: the error page when the app cannot
	// answer (no web process up, or none answered), the maintenance page
	// in maintenance mode.
	ErrorPage       string `json:"error_page,omitempty"`
	MaintenancePage string `json:"maintenance_page,omitempty"`
}

// ValidatePagePath reports why name cannot name a page file of an image,
// or nil. The empty name (no page) is valid.
func ValidatePagePath(name string) error {
	if name == "" {
		return nil
	}
	clean := path.Clean(strings.TrimPrefix(name, "/"))
	if clean == "." || strings.HasPrefix(clean, "../") || clean == ".." || len(name) > 1024 ||
		strings.ContainsAny(name, "\x00\r\n") {
		return Errorf(KindInvalid, "name a file of the app as pushed, e.g. public/503.html",
			"invalid page file %q", name)
	}
	return nil
}

// Ways of balancing an app's requests over its backends.
const (
	BalanceLeastConnections = "least-connections"
	BalanceRoundRobin       = "round-robin"
)

// StickyCookie is the cookie of sticky sessions: it names the backend.
const StickyCookie = "skiff_backend"

// ValidateHealthCheck reports why path cannot be a health check path, or
// nil.
func ValidateHealthCheck(path string) error {
	if !strings.HasPrefix(path, "/") || len(path) > 1024 || strings.ContainsAny(path, " \t\r\n#") {
		return Errorf(KindInvalid, "give a path of the app, e.g. /health (a query is allowed: /health?full=1)",
			"invalid health check path %q", path)
	}
	return nil
}

// MayUse reports whether tok's user may see and change app.
func (tok Token) MayUse(app App) bool {
	return tok.Admin || app.Owner == "" || app.Owner == tok.User
}

var appNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]*[a-z0-9]$`)

// reservedAppNames would collide with the platform's own hostnames.
var reservedAppNames = map[string]bool{
	"api": true, "www": true, "admin": true, "skiff": true, "git": true,
	"ssh": true, "dashboard": true, "status": true,
}

// ValidateAppName reports why name cannot name an app, or nil.
func ValidateAppName(name string) error {
	const hint = "use 3 to 30 lowercase letters, digits and dashes, starting with a letter, e.g. my-app"
	switch {
	case name == "":
		return Errorf(KindInvalid, "pass the app name with -a APP or as an argument", "no app name given")
	case len(name) < 3 || len(name) > 30:
		return Errorf(KindInvalid, hint, "app name %q must be 3 to 30 characters long", name)
	case !appNameRE.MatchString(name):
		return Errorf(KindInvalid, hint, "app name %q is invalid", name)
	case strings.Contains(name, "--"):
		return Errorf(KindInvalid, hint, "app name %q must not contain two dashes in a row", name)
	case reservedAppNames[name]:
		return Errorf(KindInvalid, "choose another name", "app name %q is reserved by the platform", name)
	}
	return nil
}

var procTypeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,30}$`)

// ValidateProcessType reports why name cannot name a process type, or nil.
func ValidateProcessType(name string) error {
	if !procTypeRE.MatchString(name) {
		return Errorf(KindInvalid, "process types are 1 to 30 letters, digits, dashes and underscores, e.g. web or worker",
			"invalid process type %q", name)
	}
	return nil
}

var labelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`)

// ValidateLabel reports why key=value cannot be a node label, or nil.
func ValidateLabel(key, value string) error {
	if !labelRE.MatchString(key) || !labelRE.MatchString(value) {
		return Errorf(KindInvalid, "labels are KEY=VALUE, each 1 to 63 letters, digits, dots, dashes and underscores, e.g. region=eu",
			"invalid label %q", key+"="+value)
	}
	return nil
}

var configKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// platformVars are set by the platform in every process and cannot be
// overridden by config.
var platformVars = map[string]bool{"PORT": true, "DYNO": true, "SKIFF_APP": true, "SKIFF_RELEASE": true}

// ValidateConfigKey reports why key cannot name a config var, or nil.
func ValidateConfigKey(key string) error {
	switch {
	case !configKeyRE.MatchString(key) || len(key) > 256:
		return Errorf(KindInvalid, "config var names are letters, digits and underscores, not starting with a digit, e.g. DATABASE_URL",
			"invalid config var name %q", key)
	case platformVars[key]:
		return Errorf(KindInvalid, "the platform sets PORT, DYNO, SKIFF_APP and SKIFF_RELEASE in every process",
			"config var %s is set by the platform and cannot be changed", key)
	}
	return nil
}

var hostLabelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// NormalizeHostname lower-cases host and checks that it is a DNS name of at
// least two labels, or a wildcard (*.example.com) over one of those. It
// returns the normalised name.
func NormalizeHostname(host string) (string, error) {
	h := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
	hint := "give a hostname such as www.example.com (or *.example.com for every name under it), without scheme, port or path"
	if h == "" || len(h) > 253 || strings.ContainsAny(h, ":/ ") {
		return "", Errorf(KindInvalid, hint, "invalid hostname %q", host)
	}
	labels := strings.Split(h, ".")
	if labels[0] == "*" {
		labels = labels[1:]
	}
	if len(labels) < 2 {
		return "", Errorf(KindInvalid, hint, "hostname %q needs at least two labels", host)
	}
	for _, l := range labels {
		if !hostLabelRE.MatchString(l) {
			return "", Errorf(KindInvalid, hint, "invalid hostname %q: label %q", host, l)
		}
	}
	return h, nil
}

// DomainKey is the key of a hostname in the domains bucket, whose keys
// cannot hold "*": a wildcard's is "_" in its place, which no hostname
// label starts with.
func DomainKey(host string) string {
	if rest, ok := strings.CutPrefix(host, "*"); ok {
		return "_" + rest
	}
	return host
}

// AppHost is the hostname an app answers at under the platform domain.
func AppHost(app, domain string) string {
	return fmt.Sprintf("%s.%s", app, domain)
}

// AppURL is where an app answers through a router on routerPort.
func AppURL(app, domain string, routerPort int) string {
	host := AppHost(app, domain)
	if routerPort != 0 && routerPort != 80 {
		host += ":" + strconv.Itoa(routerPort)
	}
	return "http://" + host
}

// Domain is a custom hostname routed to an app.
type Domain struct {
	Hostname  string    `json:"hostname"`
	App       string    `json:"app"`
	CreatedAt time.Time `json:"created_at"`
}

// Cert is a TLS certificate the router presents for Hostname, one of an
// app's domains. One certificate that names several of the app's domains
// is stored once per name.
type Cert struct {
	Hostname string `json:"hostname"`
	App      string `json:"app"`
	// CertPEM is the certificate chain, leaf first.
	CertPEM string `json:"cert_pem"`
	// KeySealed is the private key (PEM), sealed with the platform's
	// secret key; it never leaves the platform.
	KeySealed []byte    `json:"key_sealed,omitempty"`
	Names     []string  `json:"names"` // the names the certificate covers
	Issuer    string    `json:"issuer"`
	NotAfter  time.Time `json:"not_after"`
	AddedAt   time.Time `json:"added_at"`
}

// Key is an SSH public key of a user: it lets the user git push to the
// apps they may use. Keys are stored by KeyID.
type Key struct {
	Fingerprint string    `json:"fingerprint"` // SHA256:…, as ssh-keygen -l shows it
	User        string    `json:"user"`
	Name        string    `json:"name"`       // the key's comment, or a name given when it was added
	PublicKey   string    `json:"public_key"` // in authorized_keys form, without the comment
	CreatedAt   time.Time `json:"created_at"`
}

// KeyID is the key a Key is stored under: its fingerprint's hash in hex, as
// KV keys may not hold every character of a fingerprint.
func KeyID(fingerprint string) string {
	sum := sha256.Sum256([]byte(fingerprint))
	return hex.EncodeToString(sum[:16])
}

// ValidateUserName reports why name cannot name a user, or nil.
func ValidateUserName(name string) error {
	if !userNameRE.MatchString(name) {
		return Errorf(KindInvalid, "use 1 to 40 lowercase letters, digits, dots, dashes and underscores, e.g. ada",
			"invalid user name %q", name)
	}
	return nil
}

var userNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,39}$`)

// ScopeBackupsRead is the scope of a read-only token for pulling backups.
const ScopeBackupsRead = "backups:read"

// Token is a stored API token, keyed by the SHA-256 of its secret.
type Token struct {
	User  string `json:"user"`
	Admin bool   `json:"admin"`
	// Scope limits what the token may do: ScopeBackupsRead allows only
	// listing and downloading backups (of every app). Empty is no limit.
	Scope     string    `json:"scope,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}
