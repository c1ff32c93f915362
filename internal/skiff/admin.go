package skiff

import "time"

// This file holds the bodies of the admin routes that move the platform's
// state between installations (GET /v1/admin/export, POST
// /v1/admin/import). docs/admin.md describes them.

// ExportSummary says what an export holds. GET /v1/admin/export sends it,
// as JSON, in its Skiff-Export-Summary header before the file itself.
type ExportSummary struct {
	// Format is the export format's version.
	Format int `json:"format"`
	// SkiffVersion is the version of the server that made the export.
	SkiffVersion string    `json:"skiff_version"`
	CreatedAt    time.Time `json:"created_at"`
	// Records counts the exported records by bucket (apps, releases…).
	Records map[string]int `json:"records"`
	// Objects counts the exported objects by object store (slugs), and
	// ObjectBytes is their size.
	Objects     map[string]int `json:"objects"`
	ObjectBytes int64          `json:"object_bytes"`
	// Warnings are things the export could not carry, or found amiss.
	Warnings []string `json:"warnings,omitempty"`
}

// ImportReport answers POST /v1/admin/import: what was imported (or, in a
// dry run, would be).
type ImportReport struct {
	// Export describes the file that was imported.
	Export ExportSummary `json:"export"`
	// DryRun is set when the file was only checked.
	DryRun bool `json:"dry_run,omitempty"`
	// Records and Objects count what was written, by bucket and by
	// object store; Bytes is the size of the objects.
	Records map[string]int `json:"records"`
	Objects map[string]int `json:"objects"`
	Bytes   int64          `json:"bytes"`
	// Kept counts records (tokens, keys, ACME data) that this
	// installation already held with the same value, or, for the ACME
	// client's cache, held and kept.
	Kept map[string]int `json:"kept,omitempty"`
	// Apps lists the imported apps.
	Apps     []string `json:"apps"`
	Warnings []string `json:"warnings,omitempty"`
}
