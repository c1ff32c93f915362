package api

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// maxWebhooks bounds the webhooks of one app (or of the platform).
const maxWebhooks = 20

// scopeOf is the app a webhook or alert route is about: the one in the
// path, or "" (the platform) on the admins' routes.
func (a *API) scopeOf(r *http.Request) (string, error) {
	if r.PathValue("app") == "" {
		return "", nil
	}
	app, _, err := a.app(r)
	return app.Name, err
}

// scopeHint is how the CLI names scope, for hints.
func scopeHint(scope string) string {
	if scope == "" {
		return "--platform"
	}
	return "-a " + scope
}

func (a *API) listWebhooks(w http.ResponseWriter, r *http.Request, _ skiff.Token) {
	scope, err := a.scopeOf(r)
	if err != nil {
		writeError(w, err)
		return
	}
	hooks, err := a.st.Webhooks.Values(r.Context(), skiff.Scope(scope)+".*")
	if err != nil {
		writeError(w, err)
		return
	}
	out := []skiff.WebhookView{}
	for _, h := range hooks {
		v, err := a.webhookView(r.Context(), h)
		if err != nil {
			writeError(w, err)
			return
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	writeJSON(w, http.StatusOK, out)
}

// webhookView shows h with its last deliveries.
func (a *API) webhookView(ctx context.Context, h skiff.Webhook) (skiff.WebhookView, error) {
	v := skiff.WebhookView{ID: h.ID, App: h.App, URL: h.URL, Events: h.Events, Format: h.Format, CreatedAt: h.CreatedAt,
		CreatedBy: h.CreatedBy, Deliveries: []skiff.DeliveryResult{}}
	st, _, err := a.st.Deliveries.Get(ctx, h.Key())
	if err != nil && !errors.Is(err, skiff.ErrNotFound) {
		return v, err
	}
	if st.Deliveries != nil {
		v.Deliveries = st.Deliveries
	}
	return v, nil
}

func (a *API) addWebhook(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	scope, err := a.scopeOf(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req skiff.WebhookRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := skiff.ValidateWebhookURL(req.URL); err != nil {
		writeError(w, err)
		return
	}
	if len(req.Events) == 0 {
		req.Events = []string{"all"}
	}
	if err := skiff.ValidateEventFilters(req.Events); err != nil {
		writeError(w, err)
		return
	}
	switch req.Format {
	case "":
		req.Format = skiff.FormatSkiff
	case skiff.FormatSkiff, skiff.FormatSlack:
	default:
		writeError(w, skiff.Errorf(skiff.KindInvalid, "the formats are skiff (the event as JSON) and slack", "unknown webhook format %q", req.Format))
		return
	}
	if len(req.Secret) > 0 && len(req.Secret) < 16 {
		writeError(w, skiff.Errorf(skiff.KindInvalid, "give a secret of at least 16 characters, or none to have one made",
			"the webhook secret is too short"))
		return
	}
	if err := underLimit(r.Context(), a.st.Webhooks, scope, maxWebhooks, "webhooks"); err != nil {
		writeError(w, err)
		return
	}
	key := req.Secret
	if key == "" {
		key = "whsec_" + secret.Token(24)
	}
	sealed, err := a.st.Seal([]byte(key))
	if err != nil {
		writeError(w, err)
		return
	}
	h := skiff.Webhook{ID: secret.Token(4), App: scope, URL: req.URL, Events: req.Events, Format: req.Format, SecretSealed: sealed,
		CreatedAt: time.Now().UTC(), CreatedBy: tok.User}
	if _, err := a.st.Webhooks.Create(r.Context(), h.Key(), h); err != nil {
		writeError(w, err)
		return
	}
	v, _ := a.webhookView(r.Context(), h)
	v.Secret = key
	writeJSON(w, http.StatusCreated, v)
}

func (a *API) removeWebhook(w http.ResponseWriter, r *http.Request, _ skiff.Token) {
	scope, err := a.scopeOf(r)
	if err != nil {
		writeError(w, err)
		return
	}
	key := skiff.WebhookKey(scope, r.PathValue("id"))
	err = removeRecord(r.Context(), a.st.Webhooks, key,
		skiff.Errorf(skiff.KindNotFound, "skiff webhooks "+scopeHint(scope)+" lists them", "no webhook %q", r.PathValue("id")))
	if err != nil {
		writeError(w, err)
		return
	}
	if err := a.st.Deliveries.Delete(r.Context(), key); err != nil {
		a.log.Warn("delete a webhook's deliveries", "webhook", key, "err", err)
	}
	w.WriteHeader(http.StatusNoContent)
}

// removeRecord deletes the record at key of b, or answers notFound if
// there is none.
func removeRecord[T any](ctx context.Context, b *store.Bucket[T], key string, notFound error) error {
	if _, _, err := b.Get(ctx, key); err != nil {
		if errors.Is(err, skiff.ErrNotFound) {
			return notFound
		}
		return err
	}
	return b.Delete(ctx, key)
}

// underLimit says why scope ("" for the platform) may have no more
// records in b than the max it has: what names them, as their command
// does.
func underLimit[T any](ctx context.Context, b *store.Bucket[T], scope string, max int, what string) error {
	have, err := b.Values(ctx, skiff.Scope(scope)+".*")
	if err != nil {
		return err
	}
	if len(have) >= max {
		return skiff.Errorf(skiff.KindConflict, "remove one first: skiff "+what+" remove "+scopeHint(scope)+" ID",
			"%s has %d %s already, the most there may be", scopeName(scope), len(have), what)
	}
	return nil
}

// scopeName names scope in messages.
func scopeName(scope string) string {
	if scope == "" {
		return "the platform"
	}
	return scope
}
