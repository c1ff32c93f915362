package api

import (
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// usage answers GET /v1/usage?month=YYYY-MM[&app=APP][&format=csv]: the
// month's usage and cost of one app, or of every app the token may use
// (for an admin, every app that used anything, deleted ones too). The
// metrics role makes the report; this checks who may see what and writes
// it as JSON, or CSV when asked (format=csv, or Accept: text/csv).
func (a *API) usage(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	q := r.URL.Query()
	asCSV, err := wantsCSV(r)
	if err != nil {
		writeError(w, err)
		return
	}
	req := skiff.UsageRequest{Month: q.Get("month")}
	if req.Month == "" {
		req.Month = skiff.MonthOf(time.Now())
	} else if _, err := skiff.ParseMonth(req.Month); err != nil {
		writeError(w, err)
		return
	}
	name, exists := q.Get("app"), true
	switch {
	case name != "":
		if exists, err = a.mayReadUsage(r, tok, name); err != nil {
			writeError(w, err)
			return
		}
		req.Apps = []string{name}
	case tok.Admin:
		req.All = true
	default:
		apps, err := a.st.Apps.Values(r.Context(), "")
		if err != nil {
			writeError(w, err)
			return
		}
		req.Apps = []string{}
		for _, app := range apps {
			if tok.MayUse(app) {
				req.Apps = append(req.Apps, app.Name)
			}
		}
	}
	rep, err := a.st.UsageReport(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	if !exists && (len(rep.Apps) == 0 || rep.Apps[0].Usage.Empty()) {
		writeError(w, skiff.Errorf(skiff.KindNotFound, "skiff apps lists the apps; skiff usage without -a shows every app that used anything",
			"no app named %s, and none by that name used anything in %s", name, req.Month))
		return
	}
	if !asCSV {
		writeJSON(w, http.StatusOK, rep)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="skiff-usage-%s.csv"`, rep.Month))
	w.WriteHeader(http.StatusOK)
	_ = writeUsageCSV(w, rep)
}

// mayReadUsage checks that tok may see app's usage, and says whether the
// app exists: tok may see an app it may use, and an admin any app, even
// one deleted since.
func (a *API) mayReadUsage(r *http.Request, tok skiff.Token, name string) (exists bool, err error) {
	if err := skiff.ValidateAppName(name); err != nil {
		return false, err
	}
	app, _, err := a.st.Apps.Get(r.Context(), name)
	switch {
	case errors.Is(err, skiff.ErrNotFound) && tok.Admin:
		return false, nil
	case errors.Is(err, skiff.ErrNotFound):
		return false, skiff.Errorf(skiff.KindNotFound, "skiff apps lists your apps", "no app named %s", name)
	case err != nil:
		return false, err
	case !tok.MayUse(app):
		return true, skiff.Errorf(skiff.KindForbidden, "ask its owner or an admin for its usage", "app %s belongs to another user", name)
	}
	return true, nil
}

// wantsCSV reports whether the request asks for CSV: format=csv, or an
// Accept header naming text/csv (and no format=json).
func wantsCSV(r *http.Request) (bool, error) {
	switch f := r.URL.Query().Get("format"); f {
	case "csv":
		return true, nil
	case "json":
		return false, nil
	case "":
		return strings.Contains(r.Header.Get("Accept"), "text/csv"), nil
	default:
		return false, skiff.Errorf(skiff.KindInvalid, "ask for format=json (the default) or format=csv", "unknown format %q", f)
	}
}

// usageCSVHeader is the first line of a usage report in CSV.
var usageCSVHeader = []string{"month", "app", "item", "description", "quantity", "unit", "unit_price", "cost", "currency"}

// writeUsageCSV writes a report as CSV: one row per line item, a row
// "total" per app, and last a row "total" with no app for the report.
// Numbers are plain decimals, not rounded.
func writeUsageCSV(w http.ResponseWriter, rep skiff.UsageReport) error {
	cw := csv.NewWriter(w)
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	total := func(app string, cost float64) []string {
		return []string{rep.Month, app, "total", "", "", "", "", num(cost), rep.Currency}
	}
	_ = cw.Write(usageCSVHeader)
	for _, app := range rep.Apps {
		for _, it := range app.Items {
			_ = cw.Write([]string{rep.Month, app.App, it.Item, it.Description, num(it.Quantity), it.Unit,
				num(it.UnitPrice), num(it.Cost), rep.Currency})
		}
		_ = cw.Write(total(app.App, app.Total))
	}
	_ = cw.Write(total("", rep.Total))
	cw.Flush()
	return cw.Error()
}
