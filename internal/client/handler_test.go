package client

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// TestHandlerClient: a client of a handler in process sees what a client
// over the network sees (head, JSON, errors, a streamed body as it is
// written), and closing a stream ends the handler before Close returns.
func TestHandlerClient(t *testing.T) {
	var streaming, ended atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/whoami", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" || r.RemoteAddr == "" || r.RequestURI != "/v1/whoami" {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(skiff.APIError{Error: "unknown API token", Code: skiff.KindUnauthorized, Hint: "log in"})
			return
		}
		json.NewEncoder(w).Encode(skiff.WhoAmI{User: "ann"})
	})
	mux.HandleFunc("GET /v1/apps/{app}/logs", func(w http.ResponseWriter, r *http.Request) {
		defer ended.Store(true)
		streaming.Store(true)
		w.WriteHeader(http.StatusOK)
		for i := 0; ; i++ {
			if err := json.NewEncoder(w).Encode(skiff.LogLine{Line: r.PathValue("app"), Process: "web.1"}); err != nil {
				return
			}
			http.NewResponseController(w).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	mux.HandleFunc("GET /v1/apps", func(http.ResponseWriter, *http.Request) { panic("broken") })
	ctx := context.Background()

	if who, err := NewHandler(mux, "tok").WhoAmI(ctx); err != nil || who.User != "ann" {
		t.Fatalf("whoami = %+v, %v", who, err)
	}
	_, err := NewHandler(mux, "nope").WhoAmI(ctx)
	if skiff.KindOf(err) != skiff.KindUnauthorized || err.Error() != "unknown API token" {
		t.Fatalf("whoami with a bad token: %v (%s)", err, skiff.KindOf(err))
	}

	// Lines arrive while the handler runs; ending the read ends it.
	var got int
	err = NewHandler(mux, "tok").Logs(ctx, "shop", LogQuery{Follow: true}, func(l skiff.LogLine) error {
		if l.Line != "shop" || !streaming.Load() || ended.Load() {
			t.Fatalf("line %+v while streaming %v, ended %v", l, streaming.Load(), ended.Load())
		}
		if got++; got == 3 {
			return context.Canceled
		}
		return nil
	})
	if err != context.Canceled || got != 3 || !ended.Load() {
		t.Fatalf("logs: %v after %d lines; handler ended: %v", err, got, ended.Load())
	}

	// A handler that panics fails its request, not the process.
	if _, err := NewHandler(mux, "tok").Apps(ctx); err == nil {
		t.Fatal("a panicking handler answered")
	}
}
