package sshd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/ssh"

	"github.com/skiff-paas/skiff/internal/oneoff"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// ptyRequest is the payload of an SSH pty-req (RFC 4254, 6.2).
type ptyRequest struct {
	Term                      string
	Cols, Rows, Width, Height uint32
	Modes                     string
}

// windowChange is the payload of an SSH window-change (RFC 4254, 6.7).
type windowChange struct {
	Cols, Rows, Width, Height uint32
}

// isRun reports whether an exec request asks for a one-off process.
func isRun(command string) bool {
	verb, _, _ := strings.Cut(strings.TrimSpace(command), " ")
	return verb == "run"
}

// parseRun reads "run APP [--] COMMAND…"; the command is the rest of the
// line as the client sent it, bash when there is none.
func parseRun(command string) (app, line string, err error) {
	rest := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(command), "run"))
	app, line, _ = strings.Cut(rest, " ")
	line = strings.TrimSpace(line)
	if l, ok := strings.CutPrefix(line, "--"); ok && (l == "" || l[0] == ' ') {
		line = strings.TrimSpace(l)
	}
	if err := skiff.ValidateAppName(app); err != nil {
		return "", "", skiff.Errorf(skiff.KindInvalid, "for example: ssh -t git@HOST -p PORT run APP -- bash", "%v", err)
	}
	if line == "" {
		line = "bash"
	}
	return app, line, nil
}

// run runs a one-off process of an app for the session's user, joined to
// the session: its terminal if the client asked for one, else pipes, with
// window changes and signals passed on. The client going away stops it.
func (s *Server) run(ctx context.Context, sc *ssh.ServerConn, ch ssh.Channel, reqs <-chan *ssh.Request, command string, term *ptyRequest) int {
	// The channel's requests: window changes and signals for the run once
	// it has started. They end when the client closes the channel or goes
	// away.
	var running atomic.Pointer[oneoff.Conn]
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for req := range reqs {
			conn, ok := running.Load(), false
			switch {
			case conn == nil:
			case req.Type == "window-change":
				var w windowChange
				if ok = ssh.Unmarshal(req.Payload, &w) == nil; ok {
					_ = conn.Send(oneoff.Resize, oneoff.Size{Cols: uint16(w.Cols), Rows: uint16(w.Rows)}.Encode())
				}
			case req.Type == "signal":
				var sig struct{ Name string }
				if ok = ssh.Unmarshal(req.Payload, &sig) == nil; ok {
					_ = conn.Send(oneoff.Signal, []byte(sig.Name))
				}
			}
			if req.WantReply {
				_ = req.Reply(ok, nil)
			}
		}
	}()
	fail := func(err error) int {
		nl := "\n"
		if term != nil {
			nl = "\r\n"
		}
		var e *skiff.Error
		if errors.As(err, &e) && e.Hint != "" {
			fmt.Fprintf(ch.Stderr(), "error: %s%shint: %s%s", e.Message, nl, e.Hint, nl)
		} else {
			fmt.Fprintf(ch.Stderr(), "error: %v%s", err, nl)
		}
		return 255
	}
	app, line, err := parseRun(command)
	if err != nil {
		return fail(err)
	}
	user := sc.Permissions.Extensions["user"]
	if user == "" {
		return fail(skiff.Errorf(skiff.KindUnauthorized, "add it with: skiff keys add ~/.ssh/id_ed25519.pub",
			"your SSH key %s is not known to Skiff", sc.Permissions.Extensions["fingerprint"]))
	}
	if err := s.authorize(ctx, user, app); err != nil {
		return fail(err)
	}
	req := oneoff.Request{ID: secret.Token(12), App: app, User: user, Command: line}
	if term != nil {
		req.TTY = true
		req.Size = oneoff.Size{Cols: uint16(term.Cols), Rows: uint16(term.Rows)}
		if term.Term != "" {
			req.Env = map[string]string{"TERM": term.Term}
		}
	}
	conn, started, err := oneoff.Start(ctx, s.st.NC, req, oneoff.Options{})
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	s.log.Info("run", "app", app, "user", user, "name", started.Name, "node", started.Node)
	hangup := func() { _ = conn.Send(oneoff.Hangup, nil) }
	stop := context.AfterFunc(ctx, hangup)
	defer stop()
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := ch.Read(buf)
			if n > 0 && conn.Send(oneoff.Stdin, buf[:n]) != nil {
				return
			}
			if err != nil {
				if err == io.EOF {
					_ = conn.Send(oneoff.EOF, nil)
				}
				return
			}
		}
	}()
	running.Store(conn)
	go func() {
		<-closed
		hangup()
	}()
	st, err := conn.Output(ch, ch.Stderr())
	if err != nil {
		return fail(fmt.Errorf("%s: %w", started.Name, err))
	}
	if st.Error != "" {
		return fail(fmt.Errorf("%s: %s", started.Name, st.Error))
	}
	return st.Code
}
