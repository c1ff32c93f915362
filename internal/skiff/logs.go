package skiff

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// This file holds the nouns of an app's logs beyond the lines themselves:
// how much of them the LOGS stream keeps (retention), and the drains that
// ship them to receivers elsewhere. The metrics role enforces the one
// (internal/metrics/logretention) and runs the other
// (internal/metrics/drains); docs/logs.md is the user's guide.

// LogRetention bounds how much of one app's logs the LOGS stream keeps,
// so that a noisy app cannot push out a quiet app's history. A zero field
// takes the platform's default. It is kept on the app record.
type LogRetention struct {
	// MaxAge: lines older than this are purged.
	MaxAge time.Duration `json:"max_age,omitempty"`
	// MaxSize: the app's oldest lines are purged while its lines take
	// more than this many bytes (their text and subjects, uncompressed).
	MaxSize int64 `json:"max_size,omitempty"`
}

// Or fills r's zero fields from def.
func (r LogRetention) Or(def LogRetention) LogRetention {
	if r.MaxAge <= 0 {
		r.MaxAge = def.MaxAge
	}
	if r.MaxSize <= 0 {
		r.MaxSize = def.MaxSize
	}
	return r
}

// Bounds of a retention an app may be given: less would purge lines
// before anyone could read them; more is bounded by the whole stream's
// limits, which the API checks.
const (
	MinLogMaxAge  = time.Minute
	MinLogMaxSize = 256 << 10
)

// LogRetentionChange is the body of PATCH /v1/apps/{app}/logs/retention:
// each field given is set ("7d", "64mb"); "default" or "" returns it to
// the platform's default.
type LogRetentionChange struct {
	MaxAge  *string `json:"max_age,omitempty"`
	MaxSize *string `json:"max_size,omitempty"`
}

// LogRetentionView answers GET and PATCH /v1/apps/{app}/logs/retention:
// the retention in effect, defaults filled in.
type LogRetentionView struct {
	MaxAge         string `json:"max_age"` // "7d"
	MaxAgeSeconds  int64  `json:"max_age_seconds"`
	MaxAgeDefault  bool   `json:"max_age_default"` // the platform's default, not the app's own
	MaxSize        int64  `json:"max_size"`        // bytes
	MaxSizeDefault bool   `json:"max_size_default"`
	// Lines is how many of the app's lines the stream holds now.
	Lines uint64 `json:"lines"`
}

// ParseAge reads an age such as 7d, 36h, 1d12h, 90m or 2w (weeks and days
// as well as Go's units).
func ParseAge(s string) (time.Duration, error) {
	bad := Errorf(KindInvalid, "give an age such as 7d, 12h, 1d12h or 30m", "invalid age %q", s)
	t := strings.ToLower(strings.TrimSpace(s))
	var d time.Duration
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}} {
		i := strings.Index(t, u.suffix)
		if i < 0 {
			continue
		}
		n, err := strconv.Atoi(t[:i])
		if err != nil || n < 0 || n > 10000 {
			return 0, bad
		}
		d += time.Duration(n) * u.unit
		t = t[i+1:]
	}
	if t != "" {
		x, err := time.ParseDuration(t)
		if err != nil || x < 0 {
			return 0, bad
		}
		d += x
	}
	if d <= 0 {
		return 0, bad
	}
	return d, nil
}

// ParseSince reads where a history starts: an age before now (1h, 2d) or
// a time (2026-11-24T10:00:00Z).
func ParseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := ParseAge(s); err == nil {
		return now.Add(-d), nil
	}
	return time.Time{}, Errorf(KindInvalid, "give an age such as 1h or 2d, or a time such as 2026-11-24T10:00:00Z",
		"invalid --since %q", s)
}

// FormatAge writes an age as ParseAge reads it: 7d, 1d12h, 90s is 1m30s.
func FormatAge(d time.Duration) string {
	const day = 24 * time.Hour
	days, rest := d/day, d%day
	s := ""
	if days > 0 {
		s = strconv.FormatInt(int64(days), 10) + "d"
	}
	if rest > 0 || s == "" {
		r := rest.String() // 1h30m0s
		if strings.HasSuffix(r, "m0s") {
			r = r[:len(r)-2]
		}
		if strings.HasSuffix(r, "h0m") {
			r = r[:len(r)-2]
		}
		s += r
	}
	return s
}

// Drain ships every log line of an app (all sources) to a receiver: a
// syslog server over TCP or TLS, or an HTTPS endpoint taking batches as
// Heroku's HTTPS drains do. Stored in the drains bucket by DrainKey.
type Drain struct {
	ID        string    `json:"id"`
	App       string    `json:"app"`
	URL       string    `json:"url"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// Key is the drain's key in the drains bucket.
func (d Drain) Key() string { return DrainKey(d.App, d.ID) }

// DrainKey is the key of drain id of app in the drains bucket.
func DrainKey(app, id string) string { return app + "." + id }

// DrainStatusKey is where, in the drains bucket, the node shipping a
// drain reports how it goes (a DrainStatus).
func DrainStatusKey(app, id string) string { return DrainKey(app, id) + ".status" }

// DrainConsumer names the durable consumer of the LOGS stream that feeds
// a drain: where it stopped is kept there, and shipping resumes from it.
func DrainConsumer(app, id string) string { return "drain_" + app + "_" + id }

// DrainLease names the lease whose holder ships a drain.
func DrainLease(app, id string) string { return "drain." + app + "." + id }

// DrainRequest is the body of POST /v1/apps/{app}/drains.
type DrainRequest struct {
	URL string `json:"url"`
}

// Drain states, as DrainStatus and DrainView say them.
const (
	DrainShipping = "shipping" // lines reach the receiver
	DrainRetrying = "retrying" // the receiver failed; trying again with backoff
	DrainWaiting  = "waiting"  // no node ships the drain (yet): is a metrics role running?
)

// DrainStatus is how a drain's shipping goes, as the node shipping it
// last reported.
type DrainStatus struct {
	Node  string `json:"node"`
	State string `json:"state"`
	// Sent and Dropped count lines since the drain was made: dropped are
	// those its buffer could not keep while the receiver failed.
	Sent     uint64    `json:"sent"`
	Dropped  uint64    `json:"dropped"`
	Buffered int       `json:"buffered"` // lines waiting to be sent
	Error    string    `json:"error,omitempty"`
	ErrorAt  time.Time `json:"error_at,omitzero"`
	SentAt   time.Time `json:"sent_at,omitzero"` // of the last line that reached the receiver
	Time     time.Time `json:"time"`             // of this report
}

// DrainView is a drain as the API shows it: the password of its URL, if
// any, hidden.
type DrainView struct {
	ID        string       `json:"id"`
	App       string       `json:"app"`
	URL       string       `json:"url"`
	CreatedAt time.Time    `json:"created_at"`
	State     string       `json:"state"`
	Status    *DrainStatus `json:"status,omitempty"`
}

// MaxDrains is how many drains one app may have.
const MaxDrains = 10

// ValidateDrainURL reports why u cannot be a drain, or nil: syslog://HOST:PORT
// (TCP), syslog+tls://HOST:PORT, or https://HOST[:PORT]/PATH (http:// too,
// for a receiver on a private network).
func ValidateDrainURL(u string) error {
	hint := "give syslog://HOST:PORT, syslog+tls://HOST:PORT or https://HOST/PATH"
	p, err := url.Parse(u)
	if err != nil || len(u) > 2048 {
		return Errorf(KindInvalid, hint, "invalid drain URL %q", u)
	}
	switch p.Scheme {
	case "syslog", "syslog+tls":
		host, port, err := net.SplitHostPort(p.Host)
		if err != nil || host == "" || port == "" {
			return Errorf(KindInvalid, "a syslog drain names its port: "+p.Scheme+"://logs.example.com:6514",
				"drain URL %q has no port", u)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return Errorf(KindInvalid, "a port is 1 to 65535", "invalid port in drain URL %q", u)
		}
		if p.User != nil || (p.Path != "" && p.Path != "/") || p.RawQuery != "" {
			return Errorf(KindInvalid, hint, "a syslog drain URL is only %s://HOST:PORT, not %q", p.Scheme, u)
		}
	case "https", "http":
		if p.Hostname() == "" {
			return Errorf(KindInvalid, hint, "drain URL %q has no host", u)
		}
	default:
		return Errorf(KindInvalid, hint, "unknown drain URL scheme %q", p.Scheme)
	}
	return nil
}

// RedactURL hides the password of a URL that has one.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Redacted()
}

// DrainDropMessage is the platform log line that says a drain dropped
// lines.
func DrainDropMessage(id string, n uint64, buffer int, why string) string {
	return fmt.Sprintf("Log drain %s dropped %d lines: its buffer of %d lines was full (%s)", id, n, buffer, why)
}
