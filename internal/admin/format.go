package admin

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// FormatVersion is the version of the export format this package writes;
// Import reads it and every older one.
const FormatVersion = 1

// formatName marks a manifest as a Skiff export's.
const formatName = "skiff-export"

// manifestName is the tar entry of the manifest, the first of the file.
const manifestName = "manifest.json"

// Manifest is the first entry of an export. It lists every other entry.
type Manifest struct {
	Format       string    `json:"format"` // "skiff-export"
	Version      int       `json:"version"`
	SkiffVersion string    `json:"skiff_version"`
	CreatedAt    time.Time `json:"created_at"`
	// Secrets says how sealed values are written: "open", with the
	// source's key taken off, for the target to seal with its own.
	Secrets     string         `json:"secrets"`
	Records     map[string]int `json:"records"`
	Objects     map[string]int `json:"objects"`
	ObjectBytes int64          `json:"object_bytes"`
	// Left lists what the export leaves behind on purpose, and why.
	Left     []string `json:"left_behind,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	Entries  []Entry  `json:"entries"`
}

// Entry is one record or object of an export, in the order of the file.
type Entry struct {
	// Name is the tar entry's name.
	Name string `json:"name"`
	// Bucket and Key locate a record.
	Bucket string `json:"bucket,omitempty"`
	Key    string `json:"key,omitempty"`
	// Store and Object locate an object; Description, Headers and
	// Metadata are its metadata in the object store.
	Store       string              `json:"store,omitempty"`
	Object      string              `json:"object,omitempty"`
	Description string              `json:"description,omitempty"`
	Headers     map[string][]string `json:"headers,omitempty"`
	Metadata    map[string]string   `json:"metadata,omitempty"`
	Size        int64               `json:"size"`
	SHA256      string              `json:"sha256"` // hex
}

// Summary is what the manifest says about the export as a whole.
func (m *Manifest) Summary() skiff.ExportSummary {
	return skiff.ExportSummary{Format: m.Version, SkiffVersion: m.SkiffVersion, CreatedAt: m.CreatedAt,
		Records: m.Records, Objects: m.Objects, ObjectBytes: m.ObjectBytes, Warnings: m.Warnings}
}

// check reports why m cannot be imported by this version, or nil.
func (m *Manifest) check() error {
	if m.Format != formatName {
		return notAnExport(fmt.Errorf("its manifest is of format %q", m.Format))
	}
	if m.Version < 1 || m.Version > FormatVersion {
		return skiff.Errorf(skiff.KindInvalid, "import it with the Skiff version that made it ("+m.SkiffVersion+") or a newer one",
			"the export is of format version %d; this Skiff reads versions 1 to %d", m.Version, FormatVersion)
	}
	if m.Secrets != "open" {
		return notAnExport(fmt.Errorf("unknown secrets mode %q", m.Secrets))
	}
	names := map[string]bool{manifestName: true}
	for _, e := range m.Entries {
		if names[e.Name] {
			return notAnExport(fmt.Errorf("entry %s is listed twice", e.Name))
		}
		names[e.Name] = true
		if e.Size < 0 || len(e.SHA256) != 64 {
			return notAnExport(fmt.Errorf("entry %s has no valid size and checksum", e.Name))
		}
		switch {
		case e.Bucket != "" && e.Store == "":
			if specOf(e.Bucket) == nil {
				return notAnExport(fmt.Errorf("entry %s is of bucket %q, which this Skiff does not import", e.Name, e.Bucket))
			}
			if !validKey(e.Key) {
				return notAnExport(fmt.Errorf("entry %s has an invalid key %q", e.Name, e.Key))
			}
			if e.Size > maxRecord {
				return notAnExport(fmt.Errorf("record %s is %d bytes, more than a record may be", e.Name, e.Size))
			}
		case e.Store == skiff.ObjectSlugs && e.Bucket == "":
			if e.Object == "" {
				return notAnExport(fmt.Errorf("entry %s names no object", e.Name))
			}
		default:
			return notAnExport(fmt.Errorf("entry %s is neither a record nor an image", e.Name))
		}
	}
	return nil
}

func notAnExport(err error) error {
	return &skiff.Error{Kind: skiff.KindInvalid, Message: "the file is not a Skiff export this version can read", Err: err,
		Hint: "give a file made by skiff admin export"}
}

// damaged is the error of a file whose content does not match its manifest.
func damaged(format string, args ...any) error {
	return skiff.Errorf(skiff.KindInvalid, "the file was damaged or cut short on its way: export it again, and compare its size with the original's",
		"the export is damaged: "+format+"; nothing was imported", args...)
}

// Limits on what an import holds in memory: records are kept until every
// entry has been checked.
const (
	maxManifest = 256 << 20
	maxRecord   = 8 << 20
	maxRecords  = 1 << 30 // all records together
)

// kvKeyRE is what JetStream accepts as a key.
var kvKeyRE = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)

func validKey(k string) bool {
	return kvKeyRE.MatchString(k) && !strings.HasPrefix(k, ".") && !strings.HasSuffix(k, ".")
}

// kind says how Import treats the target's records of a bucket.
type kind int

const (
	// fresh buckets must be empty on the target: they are the apps'
	// state, which two installations must never mix.
	fresh kind = iota
	// merged buckets (tokens, SSH keys) are added to the target's own;
	// a key the target holds with another value is a conflict.
	merged
	// cached buckets (the ACME client's cache) keep the target's value
	// where it has one.
	cached
)

// sealer seals and opens values with an installation's secret key; the
// store is one.
type sealer interface {
	Seal(plain []byte) ([]byte, error)
	Unseal(sealed []byte) ([]byte, error)
}

// spec is how one bucket is exported and imported. open turns a stored
// value into its exported form, taking off the source's secret key; seal
// turns it back with the target's. Nil means the value is taken as it is.
type spec struct {
	bucket string
	kind   kind
	open   func(s sealer, v []byte) ([]byte, error)
	seal   func(s sealer, v []byte) ([]byte, error)
}

// specs are the buckets exported, in the order Import writes them: apps
// last, so that the scheduler, which acts on apps, finds the rest there.
var specs = []spec{
	{bucket: skiff.BucketUIDs, kind: fresh},
	{bucket: skiff.BucketTokens, kind: merged},
	{bucket: skiff.BucketKeys, kind: merged},
	{bucket: skiff.BucketACME, kind: cached, open: openValue, seal: sealValue},
	{bucket: skiff.BucketCerts, kind: fresh,
		open: fieldOpener("key_sealed", "key_pem", false), seal: fieldSealer("key_pem", "key_sealed", false)},
	{bucket: skiff.BucketDomains, kind: fresh},
	{bucket: skiff.BucketConfig, kind: fresh,
		open: fieldOpener("sealed", "vars", true), seal: fieldSealer("vars", "sealed", true)},
	{bucket: skiff.BucketFormation, kind: fresh},
	{bucket: skiff.BucketWebhooks, kind: fresh,
		open: fieldOpener("secret_sealed", "secret", false), seal: fieldSealer("secret", "secret_sealed", false)},
	{bucket: skiff.BucketAlertRules, kind: fresh},
	// Drains, with their delivery statuses (counts of what was sent).
	{bucket: skiff.BucketDrains, kind: fresh},
	{bucket: skiff.BucketReleases, kind: fresh,
		open: fieldOpener("config_sealed", "config_vars", true), seal: sealRelease},
	{bucket: skiff.BucketApps, kind: fresh},
}

// transient are the buckets left behind, with the reason.
var transient = map[string]string{
	skiff.BucketAssignments: "the target's scheduler places every app's current release again",
	skiff.BucketInstances:   "reported again by the target's agents",
	skiff.BucketNodes:       "reported again by the target's nodes",
	skiff.BucketLocks:       "leases of the running roles",
	// Claims of cron slots expire by a TTL of their own, which a copy
	// would lose; the last runs are history. The jobs are in the releases.
	"cron": "claims of scheduled jobs' slots and their last runs; the jobs themselves are in the releases",
	// The add-ons' data is on their servers' volumes, not in the bus.
	skiff.BucketAddons:      addonsLeft,
	skiff.BucketServices:    addonsLeft,
	skiff.BucketServiceStat: addonsLeft,
	skiff.BucketBackups:     "backups are copied off with skiff backups pull or download",
	skiff.BucketDeliveries:  "webhooks' past deliveries are history",
	skiff.BucketUsageHours:  "usage per hour is history, as the USAGE stream is: take the bills first with skiff usage --csv",
	skiff.BucketAlerts:      "alerts are raised again by the target's alert rules",
}

// addonsLeft says why the add-ons stay behind.
const addonsLeft = "add-ons keep their data on their servers' volumes, which an export cannot carry: " +
	"apps keep their URLs to the servers they have; docs/admin.md says how to move a database"

// leftObjects are the object stores left behind, with the reason.
var leftObjects = map[string]string{
	skiff.ObjectSources: "uploads are deleted once built; releases do not refer to them",
	"buildcache":        "build caches are a speed-up only; the first build on the target starts cold",
	skiff.ObjectBackups: "backups are copied off with skiff backups pull or download",
}

func specOf(bucket string) *spec {
	for i := range specs {
		if specs[i].bucket == bucket {
			return &specs[i]
		}
	}
	return nil
}

// openValue opens a value that is sealed as a whole (a JSON string of the
// sealed bytes) into a JSON string of the plain bytes.
func openValue(s sealer, v []byte) ([]byte, error) {
	var sealed []byte
	if err := json.Unmarshal(v, &sealed); err != nil {
		return nil, err
	}
	plain, err := s.Unseal(sealed)
	if err != nil {
		return nil, err
	}
	return json.Marshal(plain)
}

func sealValue(s sealer, v []byte) ([]byte, error) {
	var plain []byte
	if err := json.Unmarshal(v, &plain); err != nil {
		return nil, err
	}
	sealed, err := s.Seal(plain)
	if err != nil {
		return nil, err
	}
	return json.Marshal(sealed)
}

// moveField rewrites a JSON object's field from into the field to, by
// change (which returns nil to leave the field out). The other fields
// are kept as they are, even those this version does not know.
func moveField(v []byte, from, to string, change func(raw json.RawMessage) (json.RawMessage, error)) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(v, &obj); err != nil {
		return nil, err
	}
	raw, ok := obj[from]
	delete(obj, from)
	if ok {
		out, err := change(raw)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", from, err)
		}
		if out != nil {
			obj[to] = out
		}
	}
	return json.Marshal(obj)
}

// fieldOpener opens the sealed field from of a JSON object (base64, as
// encoding/json writes bytes) into the field to: the plain value as it is
// when it is JSON itself (config vars), else as a JSON string.
func fieldOpener(from, to string, plainIsJSON bool) func(sealer, []byte) ([]byte, error) {
	return func(s sealer, v []byte) ([]byte, error) {
		return moveField(v, from, to, func(raw json.RawMessage) (json.RawMessage, error) {
			if string(raw) == "null" || string(raw) == `""` {
				return nil, nil
			}
			var sealed []byte
			if err := json.Unmarshal(raw, &sealed); err != nil {
				return nil, err
			}
			plain, err := s.Unseal(sealed)
			switch {
			case err != nil:
				return nil, err
			case !plainIsJSON:
				return json.Marshal(string(plain))
			case !json.Valid(plain):
				return nil, errors.New("it does not hold JSON")
			}
			return plain, nil
		})
	}
}

// fieldSealer undoes fieldOpener with the target's key. Config vars are
// checked to be a map of strings, as the platform reads them.
func fieldSealer(from, to string, plainIsJSON bool) func(sealer, []byte) ([]byte, error) {
	return func(s sealer, v []byte) ([]byte, error) {
		return moveField(v, from, to, func(raw json.RawMessage) (json.RawMessage, error) {
			var plain []byte
			if plainIsJSON {
				var vars map[string]string
				if err := json.Unmarshal(raw, &vars); err != nil {
					return nil, err
				}
				plain, _ = json.Marshal(vars)
			} else {
				var str string
				if err := json.Unmarshal(raw, &str); err != nil {
					return nil, err
				}
				plain = []byte(str)
			}
			sealed, err := s.Seal(plain)
			if err != nil {
				return nil, err
			}
			return json.Marshal(sealed)
		})
	}
}

var sealReleaseConfig = fieldSealer("config_vars", "config_sealed", true)

// sealRelease seals a release's config, and makes a release that was still
// deploying when it was exported pending again: the target's scheduler
// rolls it out anew rather than finding it timed out.
func sealRelease(s sealer, v []byte) ([]byte, error) {
	v, err := sealReleaseConfig(s, v)
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(v, &obj); err != nil {
		return nil, err
	}
	var status skiff.ReleaseStatus
	_ = json.Unmarshal(obj["status"], &status)
	if status != skiff.ReleaseDeploying {
		return v, nil
	}
	obj["status"], _ = json.Marshal(skiff.ReleasePending)
	delete(obj, "deploy_started")
	return json.Marshal(obj)
}

// skiffVersion is the version of this binary, as the build recorded it.
func skiffVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " (" + s.Value[:12] + ")"
		}
	}
	return v
}

// hexDigest turns an object store's digest ("SHA-256=" and base64) into
// hex.
func hexDigest(d string) (string, error) {
	b64, ok := strings.CutPrefix(d, "SHA-256=")
	if !ok {
		return "", fmt.Errorf("unknown digest %q", d)
	}
	sum, err := base64.URLEncoding.DecodeString(b64)
	if err != nil || len(sum) != 32 {
		return "", fmt.Errorf("unknown digest %q", d)
	}
	return fmt.Sprintf("%x", sum), nil
}
