package api

import (
	"encoding/json"
	"net/http"
	"strings"

	adm "github.com/skiff-paas/skiff/internal/admin" // not to be confused with the admin() guard
	"github.com/skiff-paas/skiff/internal/skiff"
)

// Headers of GET /v1/admin/export: the summary comes before the file, the
// status after it, as a trailer, since an export can fail half-way (an
// image deleted meanwhile) when the answer's status has long been sent.
const (
	exportSummaryHeader = "Skiff-Export-Summary"
	exportStatusTrailer = "Skiff-Export-Status"
)

// exportState streams the platform's state as an export file
// (internal/admin). It holds config values and private keys opened.
func (a *API) exportState(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	snap, err := adm.Take(r.Context(), a.st)
	if err != nil {
		writeError(w, err)
		return
	}
	a.streams.Add(1)
	defer a.streams.Done()
	m := snap.Manifest()
	summary, _ := json.Marshal(m.Summary())
	h := w.Header()
	h.Set("Content-Type", "application/x-tar")
	h.Set("Content-Disposition", `attachment; filename="skiff-export-`+m.CreatedAt.Format("20060102-150405")+`.tar"`)
	h.Set("Cache-Control", "no-store")
	h.Set(exportSummaryHeader, string(summary))
	h.Set("Trailer", exportStatusTrailer)
	w.WriteHeader(http.StatusOK)
	a.log.Info("export started", "user", tok.User, "records", m.Records, "objects", m.Objects, "object_bytes", m.ObjectBytes)
	status := "ok"
	if err := snap.WriteTo(r.Context(), w); err != nil {
		a.log.Error("export failed", "user", tok.User, "err", err)
		status = "failed: " + strings.Join(strings.Fields(err.Error()), " ")
	} else {
		a.log.Info("export done", "user", tok.User)
	}
	h.Set(exportStatusTrailer, status)
}

// checkImport says whether this installation can take an import.
func (a *API) checkImport(w http.ResponseWriter, r *http.Request, _ skiff.Token) {
	if err := adm.CheckTarget(r.Context(), a.st); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
}

// importState reads an export file from the body into this installation,
// which must be fresh; with ?dry_run=true it only checks it.
func (a *API) importState(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	a.streams.Add(1)
	defer a.streams.Done()
	rep, err := adm.Import(r.Context(), a.st, r.Body,
		adm.ImportOptions{DryRun: r.URL.Query().Get("dry_run") == "true", Logger: a.log.With("user", tok.User)})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
