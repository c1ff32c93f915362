// Package sshd is the ssh role: an SSH server, public keys only, that
// serves git push and git clone of apps.
//
// A push runs git-receive-pack into the app's bare repository, one push per
// app at a time. The repository's pre-receive hook is the skiff binary
// itself (`skiff git-hook`): it archives the pushed commit and sends it
// back to this role over a Unix socket, which deploys it like an upload
// (internal/deploy) and streams the build to the hook, whose output git
// shows the pusher as "remote: …" lines. A failed build fails the hook, so
// the push is refused and the repository keeps its old commit, as the app
// keeps its running release.
package sshd

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/skiff-paas/skiff/internal/deploy"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// Config configures the ssh role.
type Config struct {
	// Addr is the address to listen on.
	Addr string
	// Listener, when set, is used instead of listening on Addr.
	Listener net.Listener
	// Dir holds the host key, the apps' repositories and the hook socket.
	Dir string
	// Hook is the skiff binary, which git runs as the repositories'
	// pre-receive hook. Default: this process's executable.
	Hook string
	// Deployer deploys what is pushed. Required.
	Deployer *deploy.Deployer
	Logger   *slog.Logger
}

// Server is the ssh role.
type Server struct {
	cfg      Config
	st       *store.Store
	log      *slog.Logger
	listener net.Listener
	hooks    net.Listener
	signer   ssh.Signer
	ready    atomic.Bool

	mu     sync.Mutex
	locks  map[string]*sync.Mutex // one push per app; guarded by mu
	pushes map[string]push        // pushes under way by their secret; guarded by mu
	conns  sync.WaitGroup
}

// push is a git push under way, as its hook will name it.
type push struct {
	app, user string
}

// New loads or creates the host key and opens the role's listeners.
func New(cfg Config, st *store.Store) (*Server, error) {
	if cfg.Dir == "" || cfg.Deployer == nil {
		return nil, errors.New("sshd: Dir and Deployer are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Hook == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("sshd: find the skiff binary for git hooks: %w", err)
		}
		cfg.Hook = exe
	}
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, "git"), filepath.Join(cfg.Dir, "run")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("sshd: %w", err)
		}
	}
	signer, err := hostKey(filepath.Join(cfg.Dir, "ssh_host_ed25519_key"))
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, st: st, log: cfg.Logger.With("role", "ssh"), signer: signer,
		locks: map[string]*sync.Mutex{}, pushes: map[string]push{}}
	sock := filepath.Join(cfg.Dir, "run", "hook.sock")
	os.Remove(sock)
	if s.hooks, err = net.Listen("unix", sock); err != nil {
		return nil, fmt.Errorf("sshd: hook socket: %w", err)
	}
	s.listener = cfg.Listener
	if s.listener == nil {
		if s.listener, err = net.Listen("tcp", cfg.Addr); err != nil {
			s.hooks.Close()
			return nil, fmt.Errorf("sshd: listen on %s: %w", cfg.Addr, err)
		}
	}
	return s, nil
}

// hostKey reads the server's ed25519 host key, making it on first start.
func hostKey(path string) (ssh.Signer, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return nil, gerr
		}
		block, merr := ssh.MarshalPrivateKey(priv, "skiff host key")
		if merr != nil {
			return nil, merr
		}
		data = pem.EncodeToMemory(block)
		if err = secret.WriteFileExclusive(path, data); err != nil {
			return nil, fmt.Errorf("sshd: write host key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("sshd: read host key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("sshd: host key %s: %w", path, err)
	}
	return signer, nil
}

// Addr is the address the role listens on.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// HostKey is the server's public host key in authorized_keys form.
func (s *Server) HostKey() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.signer.PublicKey())))
}

// Ready reports whether the role serves.
func (s *Server) Ready() bool { return s.ready.Load() }

// Close releases the listeners of a role that will not Run.
func (s *Server) Close() error {
	s.hooks.Close()
	return s.listener.Close()
}

// Run serves until ctx ends, then waits for the sessions under way.
func (s *Server) Run(ctx context.Context) error {
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: s.authenticate,
		ServerVersion:     "SSH-2.0-Skiff",
	}
	cfg.AddHostKey(s.signer)

	hooks := &http.Server{Handler: s.hookHandler(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go hooks.Serve(s.hooks)
	s.conns.Go(func() { s.st.WatchGoneApps(ctx, s.repos, s.forget) })

	s.ready.Store(true)
	go func() {
		<-ctx.Done()
		s.ready.Store(false)
		s.listener.Close()
	}()
	for {
		conn, err := s.listener.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return fmt.Errorf("sshd: accept: %w", err)
		}
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			s.serveConn(ctx, conn, cfg)
		}()
	}
	s.conns.Wait()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hooks.Shutdown(sctx)
	return nil
}

// authenticate lets every public key through the handshake and remembers
// whether it is known: an unknown key is refused in its session, where the
// refusal can say what to do.
func (s *Server) authenticate(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	fp := ssh.FingerprintSHA256(key)
	perms := &ssh.Permissions{Extensions: map[string]string{"fingerprint": fp}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	k, _, err := s.st.Keys.Get(ctx, skiff.KeyID(fp))
	switch {
	case errors.Is(err, skiff.ErrNotFound):
		return perms, nil
	case err != nil:
		return nil, err
	}
	if k.PublicKey != strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))) {
		return perms, nil
	}
	perms.Extensions["user"] = k.User
	return perms, nil
}

func (s *Server) serveConn(ctx context.Context, conn net.Conn, cfg *ssh.ServerConfig) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	sc, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		s.log.Debug("ssh handshake", "remote", conn.RemoteAddr().String(), "err", err)
		return
	}
	_ = conn.SetDeadline(time.Time{})
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	var active atomic.Int32
	idle := make(chan struct{})
	defer close(idle)
	go func() {
		// At shutdown, sessions under way get a while to finish; then the
		// connection is closed.
		select {
		case <-ctx.Done():
		case <-idle:
			return
		}
		for deadline := time.Now().Add(20 * time.Second); active.Load() > 0 && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
		}
		sc.Close()
	}()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only sessions are served")
			continue
		}
		ch, reqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		active.Add(1)
		go func() {
			defer wg.Done()
			defer active.Add(-1)
			s.session(ctx, sc, ch, reqs)
		}()
	}
	wg.Wait()
}

// session serves one session channel: a git command, or a message saying
// what the endpoint is for.
func (s *Server) session(ctx context.Context, sc *ssh.ServerConn, ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	var env []string
	var term *ptyRequest
	for req := range reqs {
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			if ssh.Unmarshal(req.Payload, &kv) == nil && kv.Name == "GIT_PROTOCOL" {
				env = append(env, "GIT_PROTOCOL="+kv.Value)
			}
			_ = req.Reply(true, nil)
		case "exec":
			var cmd struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &cmd); err != nil {
				_ = req.Reply(false, nil)
				return
			}
			_ = req.Reply(true, nil)
			if isRun(cmd.Command) {
				exit(ch, s.run(ctx, sc, ch, reqs, cmd.Command, term))
				return
			}
			go ssh.DiscardRequests(reqs)
			code := s.exec(ctx, sc, ch, cmd.Command, env)
			exit(ch, code)
			return
		case "shell":
			_ = req.Reply(true, nil)
			go ssh.DiscardRequests(reqs)
			fmt.Fprintf(ch.Stderr(), "Hi %s! Skiff's SSH endpoint serves git push and git clone, and one-off processes:\r\n"+
				"  git push ssh://git@HOST:PORT/APP.git main\r\n  ssh -t git@HOST -p PORT run APP -- bash\r\n", userOr(sc, "there"))
			exit(ch, 1)
			return
		case "pty-req":
			var p ptyRequest
			if ssh.Unmarshal(req.Payload, &p) == nil {
				term = &p
			}
			_ = req.Reply(true, nil)
		default:
			_ = req.Reply(false, nil)
		}
	}
}

func userOr(sc *ssh.ServerConn, fallback string) string {
	if u := sc.Permissions.Extensions["user"]; u != "" {
		return u
	}
	return fallback
}

func exit(ch ssh.Channel, code int) {
	var payload [4]byte
	binary.BigEndian.PutUint32(payload[:], uint32(code))
	_, _ = ch.SendRequest("exit-status", false, payload[:])
}

// refuse tells the client why, in git's own words, and returns the exit
// code git expects of a refused command.
func refuse(ch ssh.Channel, err error) int {
	var e *skiff.Error
	if errors.As(err, &e) && e.Hint != "" {
		fmt.Fprintf(ch.Stderr(), "fatal: %s\nhint: %s\n", e.Message, e.Hint)
	} else {
		fmt.Fprintf(ch.Stderr(), "fatal: %v\n", err)
	}
	return 128
}

// exec runs a git command for the session's user.
func (s *Server) exec(ctx context.Context, sc *ssh.ServerConn, ch ssh.Channel, command string, env []string) int {
	verb, app, err := parseCommand(command)
	if err != nil {
		return refuse(ch, err)
	}
	user := sc.Permissions.Extensions["user"]
	if user == "" {
		return refuse(ch, skiff.Errorf(skiff.KindUnauthorized,
			"add it with: skiff keys add ~/.ssh/id_ed25519.pub (or the key you push with)",
			"your SSH key %s is not known to Skiff", sc.Permissions.Extensions["fingerprint"]))
	}
	if err := s.authorize(ctx, user, app); err != nil {
		return refuse(ch, err)
	}
	repo := filepath.Join(s.cfg.Dir, "git", app+".git")
	log := s.log.With("app", app, "user", user, "command", verb)
	switch verb {
	case "git-receive-pack":
		lock := s.appLock(app)
		lock.Lock()
		defer lock.Unlock()
		if err := s.prepareRepo(ctx, repo); err != nil {
			log.Error("prepare repository", "err", err)
			return refuse(ch, fmt.Errorf("cannot prepare the repository of %s", app))
		}
		id := secret.Token(16)
		s.mu.Lock()
		s.pushes[id] = push{app: app, user: user}
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.pushes, id)
			s.mu.Unlock()
		}()
		env = append(env, "SKIFF_HOOK_SOCKET="+s.hooks.Addr().String(), "SKIFF_PUSH="+id, "SKIFF_APP="+app)
	default:
		if _, err := os.Stat(filepath.Join(repo, "HEAD")); err != nil {
			return refuse(ch, skiff.Errorf(skiff.KindNotFound, "push to it first: git push ssh://git@HOST:PORT/"+app+".git main",
				"%s has no git repository yet", app))
		}
	}
	cmd := exec.Command(verb, repo)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
	start := time.Now()
	err = cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		log.Error("git command", "err", err)
		return refuse(ch, fmt.Errorf("%s failed to run", verb))
	}
	log.Info("git", "exit", code, "took", time.Since(start).Round(time.Millisecond))
	return code
}

// parseCommand reads the command git's ssh transport sends, such as
// git-receive-pack '/shop.git', and returns the git program and the app.
func parseCommand(command string) (verb, app string, err error) {
	verb, arg, _ := strings.Cut(strings.TrimSpace(command), " ")
	switch verb {
	case "git-receive-pack", "git-upload-pack", "git-upload-archive":
	default:
		return "", "", skiff.Errorf(skiff.KindInvalid, "push with git push ssh://git@HOST:PORT/APP.git main, clone, or run a process with: ssh -t git@HOST -p PORT run APP -- bash",
			"Skiff's SSH endpoint serves git push, git clone and run APP -- COMMAND, not %q", verb)
	}
	arg = strings.Trim(strings.TrimSpace(arg), `'"`)
	arg = strings.TrimPrefix(strings.TrimPrefix(arg, "~"), "/")
	arg = strings.TrimSuffix(strings.TrimSuffix(arg, "/"), ".git")
	if err := skiff.ValidateAppName(arg); err != nil {
		return "", "", skiff.Errorf(skiff.KindInvalid, "the repository is the app's name: ssh://git@HOST:PORT/APP.git",
			"%q does not name an app", arg)
	}
	return verb, arg, nil
}

// authorize checks that user may push to or clone app.
func (s *Server) authorize(ctx context.Context, user, app string) error {
	a, _, err := s.st.Apps.Get(ctx, app)
	if errors.Is(err, skiff.ErrNotFound) {
		return skiff.Errorf(skiff.KindNotFound, "create it first: skiff apps create "+app, "no app named %s", app)
	}
	if err != nil {
		return err
	}
	admin, err := s.isAdmin(ctx, user)
	if err != nil {
		return err
	}
	if !(skiff.Token{User: user, Admin: admin}).MayUse(a) {
		return skiff.Errorf(skiff.KindForbidden, "ask its owner or an admin to push it", "app %s belongs to another user", app)
	}
	return nil
}

func (s *Server) isAdmin(ctx context.Context, user string) (bool, error) {
	tokens, err := s.st.Tokens.Values(ctx, "")
	if err != nil {
		return false, err
	}
	for _, t := range tokens {
		if t.User == user && t.Admin {
			return true, nil
		}
	}
	return false, nil
}

func (s *Server) appLock(app string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.locks[app]
	if l == nil {
		l = &sync.Mutex{}
		s.locks[app] = l
	}
	return l
}

// prepareRepo makes the app's bare repository if it is new, and (re)writes
// its hook so that it names this binary.
func (s *Server) prepareRepo(ctx context.Context, repo string) error {
	if _, err := os.Stat(filepath.Join(repo, "HEAD")); errors.Is(err, os.ErrNotExist) {
		out, err := exec.CommandContext(ctx, "git", "init", "--bare", "--quiet", "--initial-branch=main", repo).CombinedOutput()
		if err != nil {
			return fmt.Errorf("git init: %v: %s", err, out)
		}
	}
	hook := fmt.Sprintf("#!/bin/sh\n# Written by skiff: every push to main or master is built and released.\nexec %s git-hook pre-receive\n",
		shellQuote(s.cfg.Hook))
	path := filepath.Join(repo, "hooks", "pre-receive")
	if old, err := os.ReadFile(path); err == nil && string(old) == hook {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(hook), 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// repos lists the apps that have a repository here.
func (s *Server) repos() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.cfg.Dir, "git"))
	if err != nil {
		return nil, err
	}
	var apps []string
	for _, e := range entries {
		if app, ok := strings.CutSuffix(e.Name(), ".git"); ok && e.IsDir() {
			apps = append(apps, app)
		}
	}
	return apps, nil
}

// forget deletes the repository of a destroyed app, after any push to it.
func (s *Server) forget(_ context.Context, app string) {
	l := s.appLock(app)
	l.Lock()
	defer l.Unlock()
	repo := filepath.Join(s.cfg.Dir, "git", app+".git")
	if _, err := os.Stat(repo); errors.Is(err, os.ErrNotExist) {
		return
	}
	if err := os.RemoveAll(repo); err != nil {
		s.log.Error("delete the repository of a destroyed app", "app", app, "err", err)
		return
	}
	s.log.Info("repository of a destroyed app deleted", "app", app)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// hookHandler serves the hooks' deploys on the Unix socket: the same route
// and stream as the API's, authenticated by the push's secret.
func (s *Server) hookHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/apps/{app}/deploys", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		p, ok := s.pushes[id]
		s.mu.Unlock()
		if !ok || p.app != r.PathValue("app") {
			deploy.WriteError(w, skiff.Errorf(skiff.KindUnauthorized, "push again", "this hook belongs to no push under way"))
			return
		}
		d := s.cfg.Deployer
		req := deploy.Request{App: p.app, Actor: p.user, Description: r.URL.Query().Get("description"), Size: r.ContentLength}
		src, err := d.Receive(r.Context(), req, r.Body)
		if err != nil {
			deploy.WriteError(w, err)
			return
		}
		st := deploy.NewStream(w)
		st.Line("-----> Received %s", skiff.HumanBytes(src.Size))
		d.Run(r.Context(), req, src, st)
	})
	return mux
}
