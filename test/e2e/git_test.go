package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sshKey makes an ed25519 key pair in dir/.ssh and returns the private
// key's path.
func sshKey(t *testing.T, dir string) string {
	t.Helper()
	key := filepath.Join(dir, ".ssh", "id_ed25519")
	os.MkdirAll(filepath.Dir(key), 0o700)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "e2e@test", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	return key
}

// git runs the real git client in dir, pushing over ssh with key, and
// returns its combined output and error.
func git(t *testing.T, dir, key string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_SSH_COMMAND=ssh -i "+key+" -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
		"GIT_AUTHOR_NAME=E2E", "GIT_AUTHOR_EMAIL=e2e@test", "GIT_COMMITTER_NAME=E2E", "GIT_COMMITTER_EMAIL=e2e@test",
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+filepath.Dir(filepath.Dir(key)))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustGit(t *testing.T, dir, key string, args ...string) string {
	t.Helper()
	out, err := git(t, dir, key, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// repo makes a git repository of a test app with one commit.
func repo(t *testing.T, name string, extra map[string]string) string {
	t.Helper()
	dir := app(t, name, extra)
	mustGit(t, dir, "/dev/null", "init", "-q", "-b", "main")
	commit(t, dir, "first")
	return dir
}

func commit(t *testing.T, dir, msg string) {
	t.Helper()
	mustGit(t, dir, "/dev/null", "add", "-A")
	mustGit(t, dir, "/dev/null", "commit", "-q", "-m", msg)
}

// TestGitPush deploys with the real git and ssh clients: a push builds and
// releases with the output streamed as remote: lines, a clone gives the
// source back, and bad pushes fail with their reason while the app keeps
// serving.
func TestGitPush(t *testing.T) {
	s := startServer(t)
	key := sshKey(t, s.home)
	if out := s.ok("keys", "add"); !strings.Contains(out, "SHA256:") {
		t.Fatalf("keys add: %s", out)
	}
	s.ok("apps", "create", "pushy")
	dir := repo(t, "pyapp", nil)
	r := s.cliIn(dir, "git", "remote", "-a", "pushy")
	if r.code != 0 || !strings.Contains(r.out, "ssh://git@127.0.0.1:") {
		t.Fatalf("git remote: %d %s %s", r.code, r.out, r.err)
	}
	// The app is now known from the remote.
	if r := s.cliIn(dir, "apps", "info"); r.code != 0 || !strings.Contains(r.out, "=== pushy") {
		t.Fatalf("apps info in the checkout: %d %s %s", r.code, r.out, r.err)
	}

	start := time.Now()
	out := mustGit(t, dir, key, "push", "skiff", "main")
	for _, want := range []string{"remote: -----> Building pushy", "remote:        Procfile declares types -> web, worker",
		"remote:        v1 deployed: http://pushy.skiff.test:"} {
		if !strings.Contains(out, want) {
			t.Fatalf("push output lacks %q:\n%s", want, out)
		}
	}
	s.waitFor(host("pushy"), "release=v1")
	t.Logf("git push to first 200: %s", time.Since(start).Round(time.Millisecond))
	if rels := s.ok("releases", "-a", "pushy"); !strings.Contains(rels, "Deploy ") {
		t.Fatalf("releases:\n%s", rels)
	}

	// A clone gives the pushed source back.
	clone := filepath.Join(t.TempDir(), "clone")
	mustGit(t, filepath.Dir(clone), key, "clone", "-q", "ssh://git@"+s.sshAddr+"/pushy.git", clone)
	if _, err := os.Stat(filepath.Join(clone, "server.py")); err != nil {
		t.Fatalf("clone lacks server.py: %v", err)
	}

	// A failing build fails the push; the app and the repository keep v1.
	os.WriteFile(filepath.Join(dir, "Procfile"), []byte("web python3 server.py\n"), 0o644)
	commit(t, dir, "broken Procfile")
	out, err := git(t, dir, key, "push", "skiff", "main")
	if err == nil || !strings.Contains(out, "Procfile line 1") || !strings.Contains(out, "pre-receive hook declined") {
		t.Fatalf("a broken push: err %v\n%s", err, out)
	}
	s.waitFor(host("pushy"), "release=v1")
	head := strings.TrimSpace(mustGit(t, clone, key, "ls-remote", "origin", "refs/heads/main"))
	if local := strings.TrimSpace(mustGit(t, clone, key, "rev-parse", "HEAD")); !strings.HasPrefix(head, local) {
		t.Fatalf("the refused commit reached the repository: remote %s, first push %s", head, local)
	}

	// Fixed, it deploys; another branch is taken but not deployed.
	os.WriteFile(filepath.Join(dir, "Procfile"), []byte("web: python3 server.py\n"), 0o644)
	commit(t, dir, "fixed")
	mustGit(t, dir, key, "push", "skiff", "main")
	s.waitFor(host("pushy"), "release=v2")
	if out := mustGit(t, dir, key, "push", "skiff", "main:feature"); !strings.Contains(out, "heads/feature is not main or master") {
		t.Fatalf("push of another branch:\n%s", out)
	}

	// Destroyed, the app leaves no repository or build cache behind, and
	// its user ID goes to the next app.
	cache := filepath.Join(s.data, "buildcache", "pushy")
	uid := ownerOf(t, cache)
	s.ok("apps", "destroy", "pushy", "--confirm", "pushy")
	eventually(t, 10*time.Second, "the repository and build cache to go", func() bool {
		_, err1 := os.Stat(filepath.Join(s.data, "ssh", "git", "pushy.git"))
		_, err2 := os.Stat(cache)
		return os.IsNotExist(err1) && os.IsNotExist(err2)
	})
	s.ok("apps", "create", "next")
	mustGit(t, dir, key, "push", "ssh://git@"+s.sshAddr+"/next.git", "main")
	if got := ownerOf(t, filepath.Join(s.data, "buildcache", "next")); got != uid {
		t.Fatalf("the next app builds as %d, not the freed %d", got, uid)
	}
}

func ownerOf(t *testing.T, path string) uint32 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Sys().(*syscall.Stat_t).Uid
}

// TestGitPushRefusals checks each reason a push is refused, said in the
// pusher's terminal.
func TestGitPushRefusals(t *testing.T) {
	s := startServer(t)
	key := sshKey(t, s.home)
	s.ok("keys", "add")
	s.ok("apps", "create", "mine")
	dir := repo(t, "pyapp", nil)
	url := "ssh://git@" + s.sshAddr

	out, err := git(t, dir, key, "push", url+"/nosuch.git", "main")
	if err == nil || !strings.Contains(out, "no app named nosuch") {
		t.Fatalf("push to a missing app: %v\n%s", err, out)
	}
	stranger := sshKey(t, t.TempDir())
	out, err = git(t, dir, stranger, "push", url+"/mine.git", "main")
	if err == nil || !strings.Contains(out, "is not known to Skiff") || !strings.Contains(out, "skiff keys add") {
		t.Fatalf("push with an unknown key: %v\n%s", err, out)
	}
	// Another user's key does not open an app that is not theirs.
	bob := *s
	bob.home = t.TempDir()
	var created struct{ Token string }
	if err := jsonOut(s.ok("users", "create", "bob", "--json"), &created); err != nil {
		t.Fatal(err)
	}
	bob.ok("login", "--api", "http://"+s.apiAddr, "--token", created.Token)
	bobKey := sshKey(t, bob.home)
	bob.ok("keys", "add")
	out, err = git(t, dir, bobKey, "push", url+"/mine.git", "main")
	if err == nil || !strings.Contains(out, "app mine belongs to another user") {
		t.Fatalf("push to another user's app: %v\n%s", err, out)
	}
	bob.fails(4, "belongs to another user", "ps", "-a", "mine")
	if list := bob.ok("apps"); strings.Contains(list, "mine") {
		t.Fatalf("bob sees admin's app:\n%s", list)
	}
	// ssh without a git command says what the endpoint is for.
	cmd := exec.Command("ssh", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR", "-p", strings.Split(s.sshAddr, ":")[1], "git@127.0.0.1", "ls")
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "serves git push, git clone and run APP -- COMMAND") {
		t.Fatalf("ssh ls: %v %s", err, b)
	}
	// Pushes to two apps run side by side and both deploy.
	s.ok("apps", "create", "other")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, a := range []string{"mine", "other"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := repo(t, "pyapp", map[string]string{"Procfile": "web: python3 server.py\n"})
			_, errs[i] = git(t, d, key, "push", url+"/"+a+".git", "main")
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("parallel pushes: %v", errs)
	}
	s.waitFor(host("mine"), "release=v1")
	s.waitFor(host("other"), "release=v1")
}

func jsonOut(s string, v any) error { return json.Unmarshal([]byte(s), v) }
