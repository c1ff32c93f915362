package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/archive"
	"github.com/skiff-paas/skiff/internal/secret"
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
	id := secret.Token(8)
	source := app.Name + "/" + id + ".tar.gz"
	n, err := a.receive(r, w, source)
	if err != nil {
		writeError(w, err)
		return
	}
	a.streams.Add(1)
	defer a.streams.Done()
	s := newStream(w)
	s.line("-----> Uploaded %s", skiff.HumanBytes(n))
	req := skiff.BuildRequest{ID: id, App: app.Name, Source: source, Actor: tok.User, Description: r.URL.Query().Get("description")}
	res, err := a.st.Build(r.Context(), req, func(line string) { s.line("%s", line) })
	if err != nil {
		a.deleteSource(source)
		s.fail(err)
		return
	}
	if res.Error != "" {
		s.fail(&skiff.Error{Kind: skiff.KindFailed, Message: res.Error, Hint: res.Hint})
		return
	}
	a.follow(r.Context(), s, app.Name, res.Release)
}

// follow streams the rollout of a release until it succeeds or fails.
func (a *API) follow(ctx context.Context, s *stream, app string, version int) {
	label := skiff.VersionLabel(version)
	s.line("-----> Launching %s...", label)
	ctx, cancel := context.WithTimeout(ctx, a.cfg.BootTimeout+30*time.Second)
	defer cancel()
	rel, err := a.st.WaitRelease(ctx, app, version, nil)
	if err != nil {
		s.fail(skiff.Errorf(skiff.KindUnavailable, "skiff releases -a "+app+" shows the release's status",
			"gave up waiting for %s to start: %v", label, err))
		return
	}
	switch rel.Status {
	case skiff.ReleaseSucceeded:
		url := a.appURL(app)
		s.line("       %s deployed: %s", label, url)
		_ = s.send(skiff.StreamMessage{Type: "result", Release: version, Status: rel.Status, URL: url}, true)
	case skiff.ReleaseSuperseded:
		s.fail(skiff.Errorf(skiff.KindConflict, "skiff releases -a "+app+" shows the newer release",
			"%s was superseded by a newer release before it started", label))
	default:
		s.fail(skiff.Errorf(skiff.KindFailed, "skiff logs -a "+app+" shows why; the previous release keeps serving",
			"release %s failed: %s", label, rel.StatusReason))
	}
}

// receive stores the upload in the sources store once it has been checked,
// and returns its size. Nothing of a bad upload is kept.
func (a *API) receive(r *http.Request, w http.ResponseWriter, name string) (int64, error) {
	tooLarge := skiff.Errorf(skiff.KindTooLarge, "leave build output, dependencies and large data out of the app's directory",
		"the upload is larger than the limit of %s", skiff.HumanBytes(a.cfg.MaxUpload))
	if r.ContentLength > a.cfg.MaxUpload {
		return 0, tooLarge
	}
	f, err := os.CreateTemp(a.cfg.WorkDir, "upload-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	n, err := io.Copy(f, http.MaxBytesReader(w, r.Body, a.cfg.MaxUpload))
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return 0, tooLarge
	}
	if err != nil {
		return 0, skiff.Errorf(skiff.KindInvalid, "upload again", "the upload was cut short: %v", err)
	}
	if n == 0 {
		return 0, skiff.Errorf(skiff.KindInvalid, "upload with skiff deploy DIR", "the upload is empty")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	if _, err := archive.Check(f, a.cfg.Limits); err != nil {
		return 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	if _, err := a.st.Sources.Put(r.Context(), jetstream.ObjectMeta{Name: name}, f); err != nil {
		return 0, fmt.Errorf("store upload: %w", err)
	}
	return n, nil
}

func (a *API) deleteSource(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.st.Sources.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		a.log.Warn("delete source", "object", name, "err", err)
	}
}
