package api

import (
	"github.com/skiff-paas/skiff/internal/deploy"

	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// maxTail bounds how many past lines one request may ask for.
const maxTail = 100_000

func (a *API) logs(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	q := r.URL.Query()
	lq := store.LogQuery{App: app.Name, Tail: 100, Process: q.Get("ps"), Source: q.Get("source")}
	if s := q.Get("tail"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > maxTail {
			writeError(w, skiff.Errorf(skiff.KindInvalid, "give a number of lines from 0 to 100000, e.g. -n 200", "invalid tail %q", s))
			return
		}
		lq.Tail = n
	}
	if s := q.Get("since"); s != "" {
		if lq.Since, err = skiff.ParseSince(s, time.Now()); err != nil {
			writeError(w, err)
			return
		}
		if q.Get("tail") == "" {
			lq.Tail = maxTail // every line since then
		}
	}
	if s := q.Get("follow"); s != "" {
		if lq.Follow, err = strconv.ParseBool(s); err != nil {
			writeError(w, skiff.Errorf(skiff.KindInvalid, "follow is true or false", "invalid follow %q", s))
			return
		}
	}
	switch lq.Source {
	case "", skiff.SourceApp, skiff.SourceRouter, skiff.SourcePlatform:
	default:
		writeError(w, skiff.Errorf(skiff.KindInvalid, "the sources are app, router and platform", "unknown log source %q", lq.Source))
		return
	}
	if p := lq.Process; p != "" {
		name, idx, hasIdx := strings.Cut(p, ".")
		if skiff.ValidateProcessType(name) != nil || hasIdx && !isDigits(idx) {
			writeError(w, skiff.Errorf(skiff.KindInvalid, "name a process as web or web.1", "invalid process %q", p))
			return
		}
	}
	a.streams.Add(1)
	defer a.streams.Done()
	s := deploy.NewStream(w)
	err = a.st.ReadLogs(r.Context(), lq, func(l skiff.LogLine) error { return s.Send(l, lq.Follow) })
	if err != nil && r.Context().Err() == nil {
		a.log.Warn("read logs", "app", app.Name, "err", err)
	}
	_ = s.Flush()
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
