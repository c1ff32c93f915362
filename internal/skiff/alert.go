package skiff

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// This file holds the nouns of notifications: webhooks that receive
// events, the deliveries that carry them, and alert rules with the alerts
// they raise. The metrics role delivers and evaluates them
// (internal/metrics/webhooks, internal/metrics/alerts); docs/alerts.md is
// the user's guide.

// Webhook formats.
const (
	FormatSkiff = "skiff" // the Event as JSON
	FormatSlack = "slack" // {"text": …, "blocks": […]}, for Slack's incoming webhooks and the like
)

// Webhook receives an app's events (or, with App "", every app's and the
// platform's) as signed POSTs. Stored by WebhookKey.
type Webhook struct {
	ID  string `json:"id"`
	App string `json:"app,omitempty"`
	URL string `json:"url"`
	// Events are the filters an event's type must match (MatchEvent);
	// ["all"] takes every event.
	Events []string `json:"events"`
	Format string   `json:"format"`
	// SecretSealed is the signing secret, sealed with the platform's key.
	SecretSealed []byte    `json:"secret_sealed"`
	CreatedAt    time.Time `json:"created_at"`
	CreatedBy    string    `json:"created_by,omitempty"`
}

// Key is the webhook's key in the webhooks bucket.
func (w Webhook) Key() string { return WebhookKey(w.App, w.ID) }

// WebhookKey is the key of webhook id of app ("" for the platform's).
func WebhookKey(app, id string) string { return Scope(app) + "." + id }

// WebhookRequest is the body of POST /v1/apps/{app}/webhooks and
// POST /v1/webhooks.
type WebhookRequest struct {
	URL    string   `json:"url"`
	Events []string `json:"events,omitempty"` // default ["all"]
	Format string   `json:"format,omitempty"` // default skiff
	// Secret signs the deliveries; empty: the platform makes one, shown
	// once in the answer.
	Secret string `json:"secret,omitempty"`
}

// WebhookView is a webhook as the API shows it: never its secret, except
// once in the answer that created it.
type WebhookView struct {
	ID         string           `json:"id"`
	App        string           `json:"app,omitempty"`
	URL        string           `json:"url"`
	Events     []string         `json:"events"`
	Format     string           `json:"format"`
	CreatedAt  time.Time        `json:"created_at"`
	CreatedBy  string           `json:"created_by,omitempty"`
	Secret     string           `json:"secret,omitempty"`
	Deliveries []DeliveryResult `json:"deliveries"` // newest first
}

// Delivery states.
const (
	DeliveryDelivered = "delivered"
	DeliveryRetrying  = "retrying" // failed, another try is due
	DeliveryFailed    = "failed"   // every try failed
)

// DeliveryResult is how one event's delivery to a webhook went, as of its
// last try.
type DeliveryResult struct {
	ID        string    `json:"id"`    // the same for every try of one delivery
	Event     string    `json:"event"` // its type
	EventTime time.Time `json:"event_time"`
	Time      time.Time `json:"time"` // of the last try
	Attempts  int       `json:"attempts"`
	State     string    `json:"state"`
	Status    int       `json:"status,omitempty"` // HTTP status of the last try
	Error     string    `json:"error,omitempty"`
}

// WebhookStatus keeps a webhook's last deliveries, newest first, in the
// deliveries bucket under the webhook's key.
type WebhookStatus struct {
	Deliveries []DeliveryResult `json:"deliveries"`
}

// MaxDeliveriesKept is how many deliveries a WebhookStatus keeps.
const MaxDeliveriesKept = 20

// DeliveryJob is one event to deliver to one webhook, or by email to
// Emails, on the DELIVERIES work queue.
type DeliveryJob struct {
	Webhook string   `json:"webhook,omitempty"` // WebhookKey
	Emails  []string `json:"emails,omitempty"`
	Event   Event    `json:"event"`
}

// DeliverySubject is the subject a job for target is queued on.
func DeliverySubject(target string) string { return "deliveries." + target }

// eventAliases are the short names of groups of event types that
// webhooks and alerts filter on.
var eventAliases = map[string][]string{
	"deploy":   {EventReleaseDeployed, EventReleaseFailed, EventBuildFailed},
	"crash":    {EventInstanceCrashed, EventCrashLoop, EventInstanceOOM},
	"oom":      {EventInstanceOOM},
	"scale":    {EventScaled},
	"config":   {EventConfigChanged},
	"restart":  {EventRestarted},
	"rollback": {EventRollback},
}

// eventGroups are the first parts of the event types, each a filter of
// its own ("backup" takes backup.*).
var eventGroups = []string{"app", "build", "release", "config", "formation", "domain", "instance", "cert", "node", "addon", "backup", "alert"}

// ValidateEventFilters reports why filters cannot select events, or nil.
// An empty list is taken as ["all"].
func ValidateEventFilters(filters []string) error {
	for _, f := range filters {
		if f == "all" || eventAliases[f] != nil || contains(eventGroups, f) {
			continue
		}
		if group, _, ok := strings.Cut(f, "."); ok && contains(eventGroups, group) {
			continue
		}
		return Errorf(KindInvalid, "use all, or some of: "+strings.Join(EventFilterNames(), ", ")+", or an event type such as release.deployed",
			"unknown event filter %q", f)
	}
	return nil
}

// EventFilterNames lists the short filters: aliases and groups.
func EventFilterNames() []string {
	out := append([]string{}, eventGroups...)
	for a := range eventAliases {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// MatchEvent reports whether an event of type typ passes filters: "all",
// an alias ("deploy", "crash"), a group ("backup" for backup.*) or a type.
func MatchEvent(filters []string, typ string) bool {
	if len(filters) == 0 {
		return true
	}
	group, _, _ := strings.Cut(typ, ".")
	for _, f := range filters {
		if f == "all" || f == typ || f == group || contains(eventAliases[f], typ) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ValidateWebhookURL reports why u cannot receive deliveries, or nil.
func ValidateWebhookURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
		return Errorf(KindInvalid, "give the full URL, e.g. https://hooks.example.com/skiff", "invalid webhook URL %q", u)
	}
	return nil
}

// Alert rule kinds.
const (
	AlertAppDown      = "app_down"      // no web instance up while the formation wants some, for For
	AlertCrashLoop    = "crash_loop"    // an instance keeps dying soon after each start
	AlertNodeDown     = "node_down"     // a node was declared dead
	AlertDisk         = "disk"          // a node's data filesystem is fuller than Threshold percent
	AlertBackupFailed = "backup_failed" // a backup, or its check, failed and none has succeeded since
	AlertErrorRate    = "error_rate"    // the share of 5xx answers over Window is above Threshold percent
	AlertP99          = "p99"           // the 99th percentile of response times over Window is above Threshold ms
)

// AlertKinds are the kinds, in the order docs list them.
var AlertKinds = []string{AlertAppDown, AlertCrashLoop, AlertNodeDown, AlertDisk, AlertBackupFailed, AlertErrorRate, AlertP99}

// PlatformAlert reports whether rules of kind are about the platform's
// nodes rather than apps: they cannot be given an app.
func PlatformAlert(kind string) bool { return kind == AlertNodeDown || kind == AlertDisk }

// Duration is a time.Duration that is "30s" in JSON.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON takes "30s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err := json.Unmarshal(b, &secs); err != nil {
			return fmt.Errorf("duration: want \"30s\" or seconds, got %s", b)
		}
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// AlertRule says when to raise an alert and whom to tell. A rule with App
// "" covers every app (or, for node_down and disk, the nodes). Stored by
// AlertRuleKey.
type AlertRule struct {
	ID   string `json:"id"`
	App  string `json:"app,omitempty"`
	Kind string `json:"kind"`
	// Threshold: percent for disk and error_rate, milliseconds for p99.
	Threshold float64 `json:"threshold,omitempty"`
	// For is how long the condition must hold before the alert fires.
	For Duration `json:"for,omitempty"`
	// Window is the span error_rate and p99 are measured over.
	Window Duration `json:"window,omitempty"`
	// Emails are told of each firing and resolution, besides the
	// webhooks that take alert events.
	Emails    []string  `json:"emails,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// Key is the rule's key in the alert_rules bucket.
func (r AlertRule) Key() string { return AlertRuleKey(r.App, r.ID) }

// AlertRuleKey is the key of rule id of app ("" for platform-wide).
func AlertRuleKey(app, id string) string { return Scope(app) + "." + id }

// AlertRuleRequest is the body of POST /v1/apps/{app}/alerts and
// POST /v1/alerts.
type AlertRuleRequest struct {
	Kind      string   `json:"kind"`
	Threshold float64  `json:"threshold,omitempty"`
	For       Duration `json:"for,omitempty"`
	Window    Duration `json:"window,omitempty"`
	Emails    []string `json:"emails,omitempty"`
}

// Rule defaults.
const (
	DefaultAppDownFor     = Duration(60 * time.Second)
	DefaultDiskPercent    = 40.0 // the planning limit of a node's disk
	DefaultErrorRate      = 5.0  // percent of answers
	DefaultP99            = 1000 // ms
	DefaultMetricWindow   = Duration(5 * time.Minute)
	MaxMetricWindow       = Duration(time.Hour)
	DefaultRepeatInterval = time.Hour
)

// Rule makes the rule the request asks for, defaults applied, or says
// why it cannot.
func (req AlertRuleRequest) Rule(app string) (AlertRule, error) {
	r := AlertRule{App: app, Kind: req.Kind, Threshold: req.Threshold, For: req.For, Window: req.Window, Emails: req.Emails}
	if !contains(AlertKinds, r.Kind) {
		return r, Errorf(KindInvalid, "the kinds are "+strings.Join(AlertKinds, ", "), "unknown alert kind %q", r.Kind)
	}
	if app != "" && PlatformAlert(r.Kind) {
		return r, Errorf(KindInvalid, "add it without -a, as an admin: skiff alerts add "+r.Kind, "%s alerts are about the platform's nodes, not one app", r.Kind)
	}
	if r.Threshold < 0 || r.For < 0 || r.Window < 0 {
		return r, Errorf(KindInvalid, "give positive values, e.g. --threshold 90 --for 1m", "negative threshold or duration")
	}
	switch r.Kind {
	case AlertAppDown:
		if r.For == 0 {
			r.For = DefaultAppDownFor
		}
	case AlertDisk, AlertErrorRate:
		def := DefaultDiskPercent
		if r.Kind == AlertErrorRate {
			def = DefaultErrorRate
		}
		if r.Threshold == 0 {
			r.Threshold = def
		}
		if r.Threshold > 100 {
			return r, Errorf(KindInvalid, "give a percentage from 0 to 100, e.g. --threshold 80", "threshold %g%% is over 100%%", r.Threshold)
		}
	case AlertP99:
		if r.Threshold == 0 {
			r.Threshold = DefaultP99
		}
	}
	if r.Kind == AlertErrorRate || r.Kind == AlertP99 {
		if r.Window == 0 {
			r.Window = DefaultMetricWindow
		}
		if r.Window > MaxMetricWindow {
			return r, Errorf(KindInvalid, "give a window of at most 1h, e.g. --window 5m", "window %s is too long", time.Duration(r.Window))
		}
	} else if r.Window != 0 {
		return r, Errorf(KindInvalid, "--window is for error_rate and p99 rules", "%s rules take no window", r.Kind)
	}
	for _, e := range r.Emails {
		if at := strings.IndexByte(e, '@'); at < 1 || at == len(e)-1 || strings.ContainsAny(e, " \r\n<>,") {
			return r, Errorf(KindInvalid, "give addresses such as ops@example.com", "invalid email address %q", e)
		}
	}
	return r, nil
}

// Describe says in words what the rule watches.
func (r AlertRule) Describe() string {
	what := "every app"
	if r.App != "" {
		what = r.App
	}
	switch r.Kind {
	case AlertAppDown:
		return fmt.Sprintf("%s has no web process up for %s", what, time.Duration(r.For))
	case AlertCrashLoop:
		return what + " has a process in a crash loop"
	case AlertNodeDown:
		return "a node is declared dead"
	case AlertDisk:
		return fmt.Sprintf("a node's data disk is over %g%% full", r.Threshold)
	case AlertBackupFailed:
		return "a backup of " + what + " failed"
	case AlertErrorRate:
		return fmt.Sprintf("over %g%% of %s's answers are 5xx over %s", r.Threshold, what, time.Duration(r.Window))
	case AlertP99:
		return fmt.Sprintf("%s's p99 response time is over %gms over %s", what, r.Threshold, time.Duration(r.Window))
	}
	return r.Kind
}

// Alert states.
const (
	AlertPending  = "pending"  // the condition holds, not yet for long enough
	AlertFiring   = "firing"   // notified
	AlertResolved = "resolved" // the condition ended after firing
)

// Alert is the state of one rule about one subject (an app or a node),
// kept in the alerts bucket by Key.
type Alert struct {
	Rule    string `json:"rule"`
	Kind    string `json:"kind"`
	App     string `json:"app,omitempty"`
	Node    string `json:"node,omitempty"`
	State   string `json:"state"`
	Message string `json:"message"`
	// Apps are the apps a node_down alert stands for: they raise no
	// app_down alerts of their own while the scheduler replaces them.
	Apps       []string  `json:"apps,omitempty"`
	Since      time.Time `json:"since"` // the condition began
	FiredAt    time.Time `json:"fired_at,omitempty"`
	ResolvedAt time.Time `json:"resolved_at,omitempty"`
	Notified   time.Time `json:"notified,omitempty"` // last notification
}

// Key is the alert's key in the alerts bucket: its rule's and subject's.
func (a Alert) Key() string {
	subject := Scope(a.App)
	if a.Node != "" {
		subject = "node-" + a.Node
	}
	return AlertKeyOf(a.Rule, subject)
}

// AlertKeyOf is the alerts bucket's key of rule key and subject.
func AlertKeyOf(ruleKey, subject string) string {
	return ruleKey + "." + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, subject)
}

// AlertNotice is what an alert event says of its alert.
type AlertNotice struct {
	Rule  string    `json:"rule"` // AlertRuleKey
	Kind  string    `json:"kind"`
	State string    `json:"state"`
	Node  string    `json:"node,omitempty"`
	Apps  []string  `json:"apps,omitempty"`
	Since time.Time `json:"since"`
}

// AlertRuleView is a rule with its alerts, as the API shows it.
type AlertRuleView struct {
	AlertRule
	Description string  `json:"description"`
	Alerts      []Alert `json:"alerts"`
}
