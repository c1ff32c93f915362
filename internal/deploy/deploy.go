// Package deploy is the path every deploy takes, whoever starts it: the
// API's upload (skiff deploy) and the ssh role's git push. It stores a
// checked source archive, hands it to a builder, and follows the release
// the build makes until it serves or fails, streaming what happens as
// NDJSON skiff.StreamMessages.
package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/archive"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// Config configures a Deployer.
type Config struct {
	// WorkDir holds uploads while they are checked. Required.
	WorkDir string
	// MaxUpload bounds a compressed upload (default 512 MiB).
	MaxUpload int64
	// Limits bound what an upload may unpack to.
	Limits archive.Limits
	// BootTimeout is the scheduler's: a deploy waits this long, and a
	// little more, for its release to come up.
	BootTimeout time.Duration
	// URL gives an app's URL, shown when its release serves.
	URL    func(app string) string
	Logger *slog.Logger
}

// Deployer runs deploys.
type Deployer struct {
	cfg Config
	st  *store.Store
	log *slog.Logger
}

// New validates cfg and returns a Deployer.
func New(cfg Config, st *store.Store) (*Deployer, error) {
	if cfg.WorkDir == "" {
		return nil, errors.New("deploy: WorkDir is required")
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = 512 << 20
	}
	if cfg.BootTimeout <= 0 {
		cfg.BootTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.URL == nil {
		cfg.URL = func(app string) string { return "" }
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	return &Deployer{cfg: cfg, st: st, log: cfg.Logger}, nil
}

// MaxUpload is the upload limit in force.
func (d *Deployer) MaxUpload() int64 { return d.cfg.MaxUpload }

// Request is one deploy.
type Request struct {
	App         string
	Actor       string
	Description string
	// Size is the upload's declared size, -1 when unknown; an upload
	// declared over the limit is refused before it is read.
	Size int64
}

// Source is an upload that passed its checks and is stored.
type Source struct {
	ID   string // the build's ID
	Name string // its object in the sources store
	Size int64
}

// Receive checks an upload and stores it in the sources store. Nothing of
// a bad upload is kept.
func (d *Deployer) Receive(ctx context.Context, req Request, body io.Reader) (Source, error) {
	var src Source
	tooLarge := skiff.Errorf(skiff.KindTooLarge, "leave build output, dependencies and large data out of the app's directory",
		"the upload is larger than the limit of %s", skiff.HumanBytes(d.cfg.MaxUpload))
	if req.Size > d.cfg.MaxUpload {
		return src, tooLarge
	}
	f, err := os.CreateTemp(d.cfg.WorkDir, "upload-*")
	if err != nil {
		return src, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	n, err := io.Copy(f, io.LimitReader(body, d.cfg.MaxUpload+1))
	var maxErr *http.MaxBytesError
	switch {
	case n > d.cfg.MaxUpload || errors.As(err, &maxErr):
		return src, tooLarge
	case err != nil:
		return src, skiff.Errorf(skiff.KindInvalid, "upload again", "the upload was cut short: %v", err)
	case n == 0:
		return src, skiff.Errorf(skiff.KindInvalid, "upload with skiff deploy DIR", "the upload is empty")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return src, err
	}
	if _, err := archive.Check(f, d.cfg.Limits); err != nil {
		return src, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return src, err
	}
	src.ID = secret.Token(8)
	src.Name = req.App + "/" + src.ID + ".tar.gz"
	if _, err := d.st.Sources.Put(ctx, jetstream.ObjectMeta{Name: src.Name}, f); err != nil {
		return Source{}, fmt.Errorf("store upload: %w", err)
	}
	src.Size = n
	return src, nil
}

// Run builds a received source and follows the release it makes until it
// serves or fails, writing output lines and then one result or error to s.
func (d *Deployer) Run(ctx context.Context, req Request, src Source, s *Stream) {
	breq := skiff.BuildRequest{ID: src.ID, App: req.App, Source: src.Name, Actor: req.Actor, Description: req.Description}
	res, err := d.st.Build(ctx, breq, func(line string) { s.Line("%s", line) })
	if err != nil {
		d.deleteSource(src.Name)
		s.Fail(err)
		return
	}
	if res.Error != "" {
		s.Fail(&skiff.Error{Kind: skiff.KindFailed, Message: res.Error, Hint: res.Hint})
		return
	}
	d.follow(ctx, s, req.App, res.Release)
}

// follow streams the rollout of a release until it succeeds or fails.
func (d *Deployer) follow(ctx context.Context, s *Stream, app string, version int) {
	label := skiff.VersionLabel(version)
	s.Line("-----> Launching %s...", label)
	ctx, cancel := context.WithTimeout(ctx, d.cfg.BootTimeout+30*time.Second)
	defer cancel()
	rel, err := d.st.WaitRelease(ctx, app, version, nil)
	if err != nil {
		s.Fail(skiff.Errorf(skiff.KindUnavailable, "skiff releases -a "+app+" shows the release's status",
			"gave up waiting for %s to start: %v", label, err))
		return
	}
	switch rel.Status {
	case skiff.ReleaseSucceeded:
		url := d.cfg.URL(app)
		s.Line("       %s deployed: %s", label, url)
		_ = s.Send(skiff.StreamMessage{Type: "result", Release: version, Status: rel.Status, URL: url}, true)
	case skiff.ReleaseSuperseded:
		s.Fail(skiff.Errorf(skiff.KindConflict, "skiff releases -a "+app+" shows the newer release",
			"%s was superseded by a newer release before it started", label))
	default:
		s.Fail(skiff.Errorf(skiff.KindFailed, "skiff logs -a "+app+" shows why; the previous release keeps serving",
			"release %s failed: %s", label, rel.StatusReason))
	}
}

func (d *Deployer) deleteSource(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.st.Sources.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		d.log.Warn("delete source", "object", name, "err", err)
	}
}

// WriteError answers an HTTP request with err as a JSON error body.
func WriteError(w http.ResponseWriter, err error) {
	status, body := skiff.ErrorBody(store.Unavailable(err))
	WriteJSON(w, status, body)
}

// WriteJSON answers an HTTP request with v as indented JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Stream writes NDJSON messages to an HTTP response, flushing each.
type Stream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	mu sync.Mutex
}

// NewStream starts a 200 NDJSON response on w.
func NewStream(w http.ResponseWriter) *Stream {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	return &Stream{w: w, rc: http.NewResponseController(w)}
}

// Send writes one message, and flushes the response when flush is set.
func (s *Stream) Send(v any, flush bool) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(append(data, '\n')); err != nil {
		return err
	}
	if !flush {
		return nil
	}
	return s.rc.Flush()
}

// Flush sends what was written so far.
func (s *Stream) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rc.Flush()
}

// Line sends an output line.
func (s *Stream) Line(format string, args ...any) {
	_ = s.Send(skiff.StreamMessage{Type: "line", Line: fmt.Sprintf(format, args...)}, true)
}

// Fail ends the stream with an error.
func (s *Stream) Fail(err error) {
	_, body := skiff.ErrorBody(err)
	_ = s.Send(skiff.StreamMessage{Type: "error", Error: body.Error, Code: body.Code, Hint: body.Hint}, true)
}
