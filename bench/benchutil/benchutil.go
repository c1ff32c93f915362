// Package benchutil runs a skiff server of a benchmark's own (random
// loopback ports, a temporary data directory) and drives it as a user
// would: the CLI, git over ssh, HTTP through the router.
package benchutil

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Domain is the platform domain of benchmark servers.
const Domain = "bench.test"

// Server is a running skiff server with a logged-in CLI environment.
type Server struct {
	Bin, Dir, Data, Home string
	API, Router, SSH     string
	token                string
	cmd                  *exec.Cmd
	key                  string // private SSH key added with skiff keys add, once Key was called
	client               *http.Client
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Start runs bin as a server in a new temporary directory.
func Start(bin string) (*Server, error) {
	bin, _ = filepath.Abs(bin)
	dir, err := os.MkdirTemp("", "skiff-bench-")
	if err != nil {
		return nil, err
	}
	os.Chmod(dir, 0o711) // builds run as their app's user
	s := &Server{Bin: bin, Dir: dir, Data: filepath.Join(dir, "data"), Home: filepath.Join(dir, "home"),
		API: freeAddr(), Router: freeAddr(), SSH: freeAddr(), client: &http.Client{Timeout: 5 * time.Second}}
	s.cmd = exec.Command(bin, "server", "--data", s.Data, "--api-addr", s.API, "--router-addr", s.Router, "--ssh-addr", s.SSH,
		"--domain", Domain, "--node-name", "bench", "--drain-delay", "200ms")
	logf, _ := os.Create(filepath.Join(dir, "server.log"))
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get("http://" + s.API + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("skiff server not healthy within 60s; see %s/server.log", dir)
		}
		time.Sleep(50 * time.Millisecond)
	}
	token, err := os.ReadFile(filepath.Join(s.Data, "admin.token"))
	if err != nil {
		s.Stop()
		return nil, err
	}
	s.token = strings.TrimSpace(string(token))
	return s, nil
}

// Stop stops the server and removes its directory.
func (s *Server) Stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
	os.RemoveAll(s.Dir)
}

// CLI runs the skiff CLI in dir as the admin.
func (s *Server) CLI(dir string, args ...string) (string, error) {
	cmd := exec.Command(s.Bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+s.Home, "XDG_CONFIG_HOME="+filepath.Join(s.Home, ".config"),
		"SKIFF_API=http://"+s.API, "SKIFF_TOKEN="+s.token, "SKIFF_APP=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("skiff %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Key makes an SSH key in the CLI's home and adds it with skiff keys add.
func (s *Server) Key() error {
	s.key = filepath.Join(s.Home, ".ssh", "id_ed25519")
	os.MkdirAll(filepath.Dir(s.key), 0o700)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", s.key).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen: %v %s", err, out)
	}
	_, err := s.CLI("", "keys", "add")
	return err
}

// Git runs git in dir, pushing over ssh with the key Key made.
func (s *Server) Git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_SSH_COMMAND=ssh -i "+s.key+" -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
		"GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@test", "GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@test",
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+s.Home)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// GitURL is where git push deploys app.
func (s *Server) GitURL(app string) string { return "ssh://git@" + s.SSH + "/" + app + ".git" }

// WaitFor polls app through the router until its answer contains want.
func (s *Server) WaitFor(app, want string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequest("GET", "http://"+s.Router+"/", nil)
		req.Host = app + "." + Domain
		if resp, err := s.client.Do(req); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(body), want) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer %q within 60s", app, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Stats summarises durations: median, min, p90, max.
func Stats(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("median %v (min %v, p90 %v, max %v, n=%d)", r(s[len(s)/2]), r(s[0]), r(s[len(s)*9/10]), r(s[len(s)-1]), len(s))
}
