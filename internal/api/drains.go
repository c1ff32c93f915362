package api

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// This file serves an app's log settings: its retention
// (GET/PATCH /v1/apps/{app}/logs/retention) and its log drains
// (/v1/apps/{app}/drains). The metrics role acts on both.

func (a *API) getLogRetention(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	v, err := a.retentionView(r.Context(), app)
	writeRetention(w, v, err)
}

func writeRetention(w http.ResponseWriter, v skiff.LogRetentionView, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (a *API) changeLogRetention(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var ch skiff.LogRetentionChange
	if err := readJSON(r, &ch); err != nil {
		writeError(w, err)
		return
	}
	ctx := r.Context()
	stream, err := a.st.JS.Stream(ctx, skiff.StreamLogs)
	if err != nil {
		writeError(w, err)
		return
	}
	limits := stream.CachedInfo().Config
	want := app.LogRetention
	if ch.MaxAge != nil {
		if want.MaxAge, err = parseRetention(*ch.MaxAge, skiff.ParseAge); err != nil {
			writeError(w, err)
			return
		}
		if want.MaxAge != 0 && (want.MaxAge < skiff.MinLogMaxAge || limits.MaxAge > 0 && want.MaxAge > limits.MaxAge) {
			writeError(w, skiff.Errorf(skiff.KindInvalid, "the server's --log-max-age bounds it; give 1m to "+skiff.FormatAge(limits.MaxAge),
				"a log max age of %s is out of range", skiff.FormatAge(want.MaxAge)))
			return
		}
	}
	if ch.MaxSize != nil {
		if want.MaxSize, err = parseRetention(*ch.MaxSize, skiff.ParseByteSize); err != nil {
			writeError(w, err)
			return
		}
		if want.MaxSize != 0 && (want.MaxSize < skiff.MinLogMaxSize || limits.MaxBytes > 0 && want.MaxSize > limits.MaxBytes) {
			writeError(w, skiff.Errorf(skiff.KindInvalid, "the server's --log-max-size bounds it; give 256kb to "+skiff.HumanBytes(limits.MaxBytes),
				"a log max size of %s is out of range", skiff.HumanBytes(want.MaxSize)))
			return
		}
	}
	if want != app.LogRetention {
		app, _, err = a.st.Apps.Update(ctx, app.Name, func(rec *skiff.App) error {
			rec.LogRetention = want
			return nil
		})
		if err != nil {
			writeError(w, err)
			return
		}
		eff := want.Or(a.st.LogDefaults())
		a.st.Log(app.Name, skiff.SourcePlatform, "api", "Log retention set to "+skiff.FormatAge(eff.MaxAge)+" and "+
			skiff.HumanBytes(eff.MaxSize)+" by "+tok.User)
	}
	v, err := a.retentionView(ctx, app)
	writeRetention(w, v, err)
}

// parseRetention reads one setting of a retention: "default" (or "") is
// 0, the platform's default.
func parseRetention[T any](s string, parse func(string) (T, error)) (T, error) {
	var zero T
	if s = strings.TrimSpace(s); s == "" || s == "default" {
		return zero, nil
	}
	return parse(s)
}

// retentionView is app's retention in effect, and how many lines it has.
func (a *API) retentionView(ctx context.Context, app skiff.App) (skiff.LogRetentionView, error) {
	eff := app.LogRetention.Or(a.st.LogDefaults())
	v := skiff.LogRetentionView{MaxAge: skiff.FormatAge(eff.MaxAge), MaxAgeSeconds: int64(eff.MaxAge / time.Second),
		MaxAgeDefault: app.LogRetention.MaxAge == 0, MaxSize: eff.MaxSize, MaxSizeDefault: app.LogRetention.MaxSize == 0}
	stream, err := a.st.JS.Stream(ctx, skiff.StreamLogs)
	if err != nil {
		return v, err
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(skiff.LogSubject(app.Name, "*", ">")))
	if err != nil {
		return v, err
	}
	for _, n := range info.State.Subjects {
		v.Lines += n
	}
	return v, nil
}

func (a *API) listDrains(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	views, err := a.drainViews(r.Context(), app.Name)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, views)
}

// drainViews lists app's drains, oldest first, with their status.
func (a *API) drainViews(ctx context.Context, app string) ([]skiff.DrainView, error) {
	drains, err := a.st.Drains.Values(ctx, skiff.DrainKey(app, "*"))
	if err != nil {
		return nil, err
	}
	sort.Slice(drains, func(i, j int) bool { return drains[i].CreatedAt.Before(drains[j].CreatedAt) })
	views := make([]skiff.DrainView, 0, len(drains))
	for _, d := range drains {
		v := skiff.DrainView{ID: d.ID, App: d.App, URL: skiff.RedactURL(d.URL), CreatedAt: d.CreatedAt, State: skiff.DrainWaiting}
		st, _, err := a.st.DrainStats.Get(ctx, skiff.DrainStatusKey(d.App, d.ID))
		switch {
		case err == nil:
			v.Status = &st
			// A report is written every few seconds: an old one is of
			// a node that stopped shipping.
			if time.Since(st.Time) < time.Minute {
				v.State = st.State
			}
		case !errors.Is(err, skiff.ErrNotFound):
			return nil, err
		}
		views = append(views, v)
	}
	return views, nil
}

func (a *API) addDrain(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req skiff.DrainRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	req.URL = strings.TrimSpace(req.URL)
	if err := skiff.ValidateDrainURL(req.URL); err != nil {
		writeError(w, err)
		return
	}
	ctx := r.Context()
	have, err := a.st.Drains.Values(ctx, skiff.DrainKey(app.Name, "*"))
	if err != nil {
		writeError(w, err)
		return
	}
	for _, d := range have {
		if d.URL == req.URL {
			writeError(w, skiff.Errorf(skiff.KindConflict, "skiff drains -a "+app.Name+" lists them",
				"app %s already drains to %s (drain %s)", app.Name, skiff.RedactURL(d.URL), d.ID))
			return
		}
	}
	if len(have) >= skiff.MaxDrains {
		writeError(w, skiff.Errorf(skiff.KindInvalid, "remove one first: skiff drains remove -a "+app.Name+" ID",
			"app %s has %d drains, the most it may have", app.Name, len(have)))
		return
	}
	d := skiff.Drain{ID: secret.Token(4), App: app.Name, URL: req.URL, CreatedAt: time.Now().UTC(), CreatedBy: tok.User}
	if _, err := a.st.Drains.Create(ctx, d.Key(), d); err != nil {
		writeError(w, err)
		return
	}
	a.st.Log(app.Name, skiff.SourcePlatform, "api", "Log drain "+d.ID+" added for "+skiff.RedactURL(d.URL)+" by "+tok.User)
	writeJSON(w, http.StatusCreated, skiff.DrainView{ID: d.ID, App: d.App, URL: skiff.RedactURL(d.URL), CreatedAt: d.CreatedAt,
		State: skiff.DrainWaiting})
}

func (a *API) removeDrain(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ref := r.PathValue("drain")
	drains, err := a.st.Drains.Values(r.Context(), skiff.DrainKey(app.Name, "*"))
	if err != nil {
		writeError(w, err)
		return
	}
	for _, d := range drains {
		if d.ID == ref || d.URL == ref || skiff.RedactURL(d.URL) == ref {
			if err := a.deleteDrain(r.Context(), d); err != nil {
				writeError(w, err)
				return
			}
			a.st.Log(app.Name, skiff.SourcePlatform, "api", "Log drain "+d.ID+" for "+skiff.RedactURL(d.URL)+" removed by "+tok.User)
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	writeError(w, skiff.Errorf(skiff.KindNotFound, "skiff drains -a "+app.Name+" lists its drains",
		"app %s has no drain %s", app.Name, ref))
}

// deleteDrain removes a drain, its status and its consumer. The node
// shipping it stops when it sees it gone.
func (a *API) deleteDrain(ctx context.Context, d skiff.Drain) error {
	if err := a.st.Drains.Delete(ctx, d.Key()); err != nil {
		return err
	}
	if err := a.st.DrainStats.Delete(ctx, skiff.DrainStatusKey(d.App, d.ID)); err != nil {
		return err
	}
	err := a.st.JS.DeleteConsumer(ctx, skiff.StreamLogs, skiff.DrainConsumer(d.App, d.ID))
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return err
	}
	return nil
}

// removeDrains removes every drain of an app that is being destroyed.
func (a *API) removeDrains(ctx context.Context, app string) error {
	drains, err := a.st.Drains.Values(ctx, skiff.DrainKey(app, "*"))
	if err != nil {
		return err
	}
	for _, d := range drains {
		if err := a.deleteDrain(ctx, d); err != nil {
			return err
		}
	}
	return nil
}
