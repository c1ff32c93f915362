package client

import (
	"context"
	"io"
	"strconv"
	"sync"

	"github.com/skiff-paas/skiff/internal/oneoff"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// RunDetached starts a one-off process in the background, its output in
// the app's logs.
func (c *Client) RunDetached(ctx context.Context, app string, req skiff.RunRequest) (skiff.RunStarted, error) {
	req.Detach = true
	var st skiff.RunStarted
	err := c.call(ctx, "POST", appPath(app, "runs"), req, &st)
	return st, err
}

// Run starts a one-off process attached to the returned session: what is
// sent to the session goes to the process, and the process's output and
// exit status come back from it. Closing the session stops the process.
func (c *Client) Run(ctx context.Context, app string, req skiff.RunRequest) (*RunSession, error) {
	req.Detach = false
	resp, rw, err := c.upgrade(ctx, "POST", appPath(app, "runs"), req, skiff.RunUpgrade, "start the run's stream")
	if err != nil {
		return nil, err
	}
	release, _ := strconv.Atoi(resp.Header.Get("Skiff-Run-Release"))
	return &RunSession{
		Started: skiff.RunStarted{Name: resp.Header.Get("Skiff-Run-Name"), Node: resp.Header.Get("Skiff-Run-Node"), Release: release},
		rw:      rw,
	}, nil
}

// RunSession is an attached one-off process.
type RunSession struct {
	Started skiff.RunStarted
	rw      io.ReadWriteCloser
	mu      sync.Mutex // one frame written at a time
}

// Send sends a frame to the process: oneoff.Stdin with input,
// oneoff.EOF, oneoff.Resize with a Size, oneoff.Signal with a name.
func (s *RunSession) Send(kind byte, payload []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return oneoff.WriteFrame(s.rw, kind, payload)
}

// Recv returns the next frame from the process: oneoff.Stdout or
// oneoff.Stderr with output, and last oneoff.Exit with its Status.
func (s *RunSession) Recv() (kind byte, payload []byte, err error) {
	return oneoff.ReadFrame(s.rw)
}

// Close hangs up: the process is stopped if it still runs.
func (s *RunSession) Close() error { return s.rw.Close() }
