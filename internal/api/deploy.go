package api

import (
	"net/http"

	"github.com/skiff-paas/skiff/internal/deploy"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// deploy takes a source upload, builds it and follows the release it makes
// until it serves or fails, streaming what happens.
func (a *API) deploy(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	req := deploy.Request{App: app.Name, Actor: tok.User, Description: r.URL.Query().Get("description"), Size: r.ContentLength}
	src, err := a.deployer.Receive(r.Context(), req, http.MaxBytesReader(w, r.Body, a.deployer.MaxUpload()+1))
	if err != nil {
		writeError(w, err)
		return
	}
	a.streams.Add(1)
	defer a.streams.Done()
	s := deploy.NewStream(w)
	s.Line("-----> Uploaded %s", skiff.HumanBytes(src.Size))
	a.deployer.Run(r.Context(), req, src, s)
}
