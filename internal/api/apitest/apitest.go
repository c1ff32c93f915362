// Package apitest runs the real API handler over a real store on a test's
// own embedded bus, for the tests of the API and of its clients.
package apitest

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/skiff-paas/skiff/internal/api"
	"github.com/skiff-paas/skiff/internal/bus/bustest"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/store"
)

// Server is a running API.
type Server struct {
	URL   string
	Token string // the admin token
	Store *store.Store
	Dir   string // holds admin.token and the API's work files
}

// Start serves an API configured by cfg; Addr and WorkDir are filled in,
// and the admin token is made. The server stops when the test ends.
func Start(t testing.TB, cfg api.Config) *Server {
	t.Helper()
	box, _ := secret.New(make([]byte, secret.KeySize))
	st, err := store.Open(context.Background(), bustest.Start(t), box, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	token, _, err := api.BootstrapAdmin(context.Background(), st, filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr, cfg.WorkDir = "127.0.0.1:0", dir
	a, err := api.New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &Server{URL: srv.URL, Token: token, Store: st, Dir: dir}
}
