package oneoff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Proc is the process type of one-off processes: they show in skiff ps as
// run.1234.
const Proc = "run"

// Request asks an agent to start a one-off process in an app's current
// release.
type Request struct {
	ID      string `json:"id"`
	App     string `json:"app"`
	User    string `json:"user"` // who runs it
	Command string `json:"command"`
	// TTY gives the process a terminal of Size; otherwise its standard
	// files are pipes.
	TTY  bool `json:"tty,omitempty"`
	Size Size `json:"size,omitempty"`
	// Env is added to the process's environment (TERM, for one).
	Env map[string]string `json:"env,omitempty"`
	// Detach runs the process with its output in the app's logs, and no
	// stream: it runs until it ends.
	Detach bool `json:"detach,omitempty"`
	// ProcessSize sets its limits (1x when empty).
	ProcessSize string `json:"process_size,omitempty"`
}

// Started is an agent's answer to a Request.
type Started struct {
	Name    string          `json:"name,omitempty"` // run.1234
	Node    string          `json:"node,omitempty"`
	Release int             `json:"release,omitempty"`
	Error   *skiff.APIError `json:"error,omitempty"`
}

// InSubject carries the frames of run id to its process.
func InSubject(id string) string { return "skiff.run." + id + ".in" }

// OutSubject carries the frames of run id from its process.
func OutSubject(id string) string { return "skiff.run." + id + ".out" }

// startTimeout bounds how long an agent may take to start a run: it may
// have to fetch the release's image first.
const startTimeout = 2 * time.Minute

// Start asks an agent to start req and returns the caller's end of its
// stream (nil for a detached run) and what the agent started.
func Start(ctx context.Context, nc *nats.Conn, req Request, opt Options) (*Conn, Started, error) {
	var st Started
	data, err := json.Marshal(req)
	if err != nil {
		return nil, st, err
	}
	var c *Conn
	if !req.Detach {
		// Listen before asking: the process may speak before the answer
		// arrives.
		if c, err = Open(nc, InSubject(req.ID), OutSubject(req.ID), opt); err != nil {
			return nil, st, err
		}
	}
	fail := func(err error) (*Conn, Started, error) {
		if c != nil {
			c.Close()
		}
		return nil, st, err
	}
	rctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	msg, err := nc.RequestWithContext(rctx, skiff.SubjectRun, data)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return fail(skiff.Errorf(skiff.KindUnavailable, "start skiff server with the agent role",
			"no agent is running to take the run"))
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return fail(skiff.Errorf(skiff.KindUnavailable, "the server log of the agents may say why",
			"no agent started the run within %s", startTimeout))
	case err != nil:
		return fail(fmt.Errorf("request a run: %w", err))
	}
	if err := json.Unmarshal(msg.Data, &st); err != nil {
		return fail(fmt.Errorf("decode the agent's answer: %w", err))
	}
	if e := st.Error; e != nil {
		return fail(&skiff.Error{Kind: e.Code, Message: e.Error, Hint: e.Hint})
	}
	return c, st, nil
}

// Accept opens the agent's end of req's stream.
func Accept(nc *nats.Conn, req Request, opt Options) (*Conn, error) {
	return Open(nc, OutSubject(req.ID), InSubject(req.ID), opt)
}

// Answer is an agent's answer to a request that failed.
func Answer(err error) Started {
	_, body := skiff.ErrorBody(err)
	return Started{Error: &body}
}
