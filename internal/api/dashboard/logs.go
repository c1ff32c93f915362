package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/skiff-paas/skiff/internal/client"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// logTail is how many past lines a log tail starts with.
const logTail = 100

// keepAlive is how often a quiet log stream sends a comment, so that
// proxies keep it open and a browser that went away is noticed.
const keepAlive = 20 * time.Second

// logStream follows an app's logs through the API's logs route and hands
// them to the page as server-sent events: each line an event whose data
// is the line as JSON and whose ID is its time, so that a browser that
// reconnects (EventSource does by itself) resumes after the last line it
// got. An error of the API ends the stream with an event "problem".
func (d *Dashboard) logStream(w http.ResponseWriter, r *request) {
	app := r.PathValue("app")
	q := client.LogQuery{Tail: logTail, Follow: true, Source: r.URL.Query().Get("source")}
	var after time.Time
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		if t, err := time.Parse(time.RFC3339Nano, last); err == nil {
			after, q.Since, q.Tail = t, last, 1000
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()

	ctx, cancel := context.WithCancel(r.Context())
	lines := make(chan skiff.LogLine)
	done := make(chan error, 1)
	go func() {
		done <- r.client.Logs(ctx, app, q, func(l skiff.LogLine) error {
			select {
			case lines <- l:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	defer func() {
		cancel()
		<-done
	}()
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		var err error
		select {
		case l := <-lines:
			if !l.Time.After(after) {
				continue // sent before the browser reconnected
			}
			data, _ := json.Marshal(l)
			_, err = fmt.Fprintf(w, "id: %s\ndata: %s\n\n", l.Time.Format(time.RFC3339Nano), data)
		case <-tick.C:
			_, err = fmt.Fprint(w, ": still here\n\n")
		case err := <-done:
			done <- err // for the deferred wait
			if err != nil && ctx.Err() == nil {
				_, body := skiff.ErrorBody(err)
				data, _ := json.Marshal(flash{Error: true, Message: sentence(body.Error), Hint: sentence(body.Hint)})
				fmt.Fprintf(w, "event: problem\ndata: %s\n\n", data)
				_ = rc.Flush()
			}
			return
		case <-ctx.Done():
			return
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}
