package api_test

import (
	"net/http"
	"testing"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// TestUsageChecksBeforeAskingTheMetricsRole: a bad month, format or app is
// refused by the API itself; a good request with no node of the metrics
// role running says so (the role's answers are tested in
// internal/metrics/usage).
func TestUsageChecksBeforeAskingTheMetricsRole(t *testing.T) {
	e := start(t)
	e.expect("GET", "/v1/usage?month=2026-13", nil, http.StatusBadRequest, skiff.KindInvalid, `invalid month "2026-13"`)
	e.expect("GET", "/v1/usage?format=xml", nil, http.StatusBadRequest, skiff.KindInvalid, `unknown format "xml"`)
	e.expect("GET", "/v1/usage?app=Nope!", nil, http.StatusBadRequest, skiff.KindInvalid, `app name "Nope!" is invalid`)
	e.expect("GET", "/v1/usage?month=2026-11", nil, http.StatusServiceUnavailable, skiff.KindUnavailable,
		"no node of the metrics role is running")
}
