package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/skiff-paas/skiff/internal/oneoff"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// run starts a one-off process. A detached one is answered with its name;
// an attached one switches the connection to the skiff-run protocol and
// carries frames between the client and the process's agent until the
// process ends or the client goes away, which stops the process.
func (a *API) run(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var body skiff.RunRequest
	if err := readJSON(r, &body); err != nil {
		writeError(w, err)
		return
	}
	req, err := runRequest(app.Name, tok.User, body)
	if err != nil {
		writeError(w, err)
		return
	}
	upgrade := strings.EqualFold(r.Header.Get("Upgrade"), skiff.RunUpgrade)
	if !req.Detach && !upgrade {
		writeError(w, skiff.Errorf(skiff.KindInvalid, "send Connection: Upgrade and Upgrade: "+skiff.RunUpgrade+", or detach",
			"an attached run needs a connection upgraded to %s", skiff.RunUpgrade))
		return
	}
	conn, started, err := oneoff.Start(r.Context(), a.st.NC, req, a.cfg.Runs)
	if err != nil {
		writeError(w, err)
		return
	}
	view := skiff.RunStarted{Name: started.Name, Node: started.Node, Release: started.Release}
	if req.Detach {
		writeJSON(w, http.StatusAccepted, view)
		return
	}
	defer conn.Close()
	a.streams.Add(1)
	defer a.streams.Done()
	netConn, rd, err := switchProtocols(w, skiff.RunUpgrade, http.Header{
		"Skiff-Run-Name": {view.Name}, "Skiff-Run-Node": {view.Node}, "Skiff-Run-Release": {strconv.Itoa(view.Release)}})
	if err != nil {
		_ = conn.Send(oneoff.Hangup, nil)
		return
	}
	defer netConn.Close()
	a.log.Info("run", "app", app.Name, "user", tok.User, "name", view.Name, "node", view.Node)
	carry(r.Context(), netConn, rd, conn)
}

// switchProtocols takes over w's connection and answers 101 Switching
// Protocols to proto, with the lines of header. What fails before the
// answer is answered as an error; what fails writing it closes the
// connection. The caller closes the connection it gets, and reads it
// through rd, which holds what the client sent past its request.
func switchProtocols(w http.ResponseWriter, proto string, header http.Header) (conn net.Conn, rd *bufio.Reader, err error) {
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		err = fmt.Errorf("take over the connection: %w", err)
		writeError(w, err)
		return nil, nil, err
	}
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n", proto)
	_ = header.Write(rw)
	_, _ = rw.WriteString("\r\n")
	if err := rw.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, rw.Reader, nil
}

// runRequest checks a run's body and makes the agent's request of it.
func runRequest(app, user string, body skiff.RunRequest) (oneoff.Request, error) {
	req := oneoff.Request{ID: secret.Token(12), App: app, User: user, Command: strings.TrimSpace(body.Command),
		TTY: body.TTY, Env: body.Env, Detach: body.Detach, ProcessSize: body.Size}
	if req.Command == "" {
		return req, skiff.Errorf(skiff.KindInvalid, "for example: skiff run -a "+app+" -- bash", "no command to run")
	}
	if body.Cols < 0 || body.Cols > 65535 || body.Rows < 0 || body.Rows > 65535 {
		return req, skiff.Errorf(skiff.KindInvalid, "", "terminal size %dx%d is out of range", body.Cols, body.Rows)
	}
	if body.Size != "" {
		if err := skiff.ValidateSize(body.Size); err != nil {
			return req, err
		}
	}
	req.Size = oneoff.Size{Cols: uint16(body.Cols), Rows: uint16(body.Rows)}
	for k := range body.Env {
		if err := skiff.ValidateConfigKey(k); err != nil {
			return req, err
		}
	}
	return req, nil
}

// carry joins a client's connection to a run's stream: the client's
// frames go to the process, the process's to the client, and the client
// going away, or the server stopping, hangs the process up.
func carry(ctx context.Context, client net.Conn, rd *bufio.Reader, conn *oneoff.Conn) {
	hangup := func() { _ = conn.Send(oneoff.Hangup, nil) }
	go func() {
		defer hangup()
		for {
			kind, p, err := oneoff.ReadFrame(rd)
			if err != nil {
				return
			}
			switch kind {
			case oneoff.Stdin, oneoff.EOF, oneoff.Resize, oneoff.Signal:
				if conn.Send(kind, p) != nil {
					return
				}
			case oneoff.Hangup:
				return
			}
		}
	}()
	stop := context.AfterFunc(ctx, func() {
		hangup()
		client.Close()
	})
	defer stop()
	st, err := conn.Output(frameWriter{client, oneoff.Stdout}, frameWriter{client, oneoff.Stderr})
	if err != nil {
		st = oneoff.Status{Code: 255, Error: err.Error()}
	}
	data, _ := json.Marshal(st)
	_ = oneoff.WriteFrame(client, oneoff.Exit, data)
}

// frameWriter writes what it is given as frames of kind.
type frameWriter struct {
	w    io.Writer
	kind byte
}

func (f frameWriter) Write(p []byte) (int, error) {
	for rest := p; len(rest) > 0; {
		n := min(len(rest), oneoff.MaxFrame)
		if err := oneoff.WriteFrame(f.w, f.kind, rest[:n]); err != nil {
			return 0, err
		}
		rest = rest[n:]
	}
	return len(p), nil
}
