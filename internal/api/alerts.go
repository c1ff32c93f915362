package api

import (
	"net/http"
	"sort"
	"time"

	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// maxAlertRules bounds the alert rules of one app (or of the platform).
const maxAlertRules = 50

// listAlerts shows alert rules with their alerts. For an app: its own
// rules and the platform's rules about every app, with only its alerts.
// For admins (GET /v1/alerts): every rule.
func (a *API) listAlerts(w http.ResponseWriter, r *http.Request, _ skiff.Token) {
	scope, err := a.scopeOf(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx := r.Context()
	rules, err := a.st.AlertRules.Values(ctx, "")
	if err != nil {
		writeError(w, err)
		return
	}
	alerts, err := a.st.Alerts.Values(ctx, "")
	if err != nil {
		writeError(w, err)
		return
	}
	byRule := map[string][]skiff.Alert{}
	for _, al := range alerts {
		if scope == "" || al.App == scope {
			byRule[al.Rule] = append(byRule[al.Rule], al)
		}
	}
	out := []skiff.AlertRuleView{}
	for _, rule := range rules {
		if scope != "" && rule.App != scope && (rule.App != "" || skiff.PlatformAlert(rule.Kind)) {
			continue
		}
		v := skiff.AlertRuleView{AlertRule: rule, Description: rule.Describe(), Alerts: byRule[rule.Key()]}
		if v.Alerts == nil {
			v.Alerts = []skiff.Alert{}
		}
		sort.Slice(v.Alerts, func(i, j int) bool { return v.Alerts[i].Since.After(v.Alerts[j].Since) })
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	writeJSON(w, http.StatusOK, out)
}

func (a *API) addAlertRule(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	scope, err := a.scopeOf(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req skiff.AlertRuleRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	rule, err := req.Rule(scope)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := underLimit(r.Context(), a.st.AlertRules, scope, maxAlertRules, "alerts"); err != nil {
		writeError(w, err)
		return
	}
	rule.ID, rule.CreatedAt, rule.CreatedBy = secret.Token(4), time.Now().UTC(), tok.User
	if _, err := a.st.AlertRules.Create(r.Context(), rule.Key(), rule); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, skiff.AlertRuleView{AlertRule: rule, Description: rule.Describe(), Alerts: []skiff.Alert{}})
}

// removeAlertRule deletes a rule; the alert engine then drops its alerts
// without telling anyone.
func (a *API) removeAlertRule(w http.ResponseWriter, r *http.Request, _ skiff.Token) {
	scope, err := a.scopeOf(r)
	if err != nil {
		writeError(w, err)
		return
	}
	key := skiff.AlertRuleKey(scope, r.PathValue("id"))
	err = removeRecord(r.Context(), a.st.AlertRules, key,
		skiff.Errorf(skiff.KindNotFound, "skiff alerts "+scopeHint(scope)+" lists the rules", "no alert rule %q", r.PathValue("id")))
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
