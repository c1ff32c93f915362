package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/skiff-paas/skiff/internal/build/buildpack"
	"github.com/skiff-paas/skiff/internal/isolate"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// Builds run as a user ID of their app's own, from this range, never as
// root: a build cannot touch another app's files or caches.
const (
	firstUID = 200000
	lastUID  = 299999
)

// buildPath is the PATH of a build: the platform's toolchains.
const buildPath = "/usr/local/go/bin:/usr/local/bin:/usr/bin:/bin"

// toolConfigs are the host's own settings of the build tools (a mirror,
// a proxy's certificate authority), shown to isolated builds read-only as
// they were to builds on the host.
var toolConfigs = []string{"/etc/gitconfig", "/etc/npmrc", "/etc/pip.conf"}

// sandbox runs a build's commands as the app's user (when the builder runs
// as root), with the build's own HOME and TMPDIR, killed whole when the
// build's context ends. Isolated (iso set), each command runs in a sandbox
// of package isolate of its own: its own mount, PID, IPC and UTS
// namespaces, the host's runtime directories read-only, the build's
// directories and the app's cache writable at their own paths (so that
// commands pass host paths around as before), nothing else of the
// platform's data, and a cgroup with the build's limits. The host's
// network is the build's: it fetches dependencies.
type sandbox struct {
	uid       int    // -1: run as the builder's own user
	user      string // the user's name in an isolated sandbox: the app's
	home, tmp string
	iso       *isolation
}

// isolation is what a build's isolated sandboxes share.
type isolation struct {
	id     string // the build's: its commands' sandboxes are ID-1, ID-2…
	root   string // where their roots are put together
	mounts []isolate.Mount
	limits isolate.Limits
	cgroup string
	n      atomic.Int64
}

// show adds host paths to the build's sandboxes, read-only. A path the
// host lacks is left out: the command that needs it says so.
func (iso *isolation) show(paths ...string) {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			iso.mounts = append(iso.mounts, isolate.Mount{Source: p, Target: p})
		}
	}
}

// Command implements buildpack.Sandbox.
func (s sandbox) Command(ctx context.Context, name string, args ...string) *buildpack.Cmd {
	env := []string{"PATH=" + buildPath, "HOME=" + s.home, "TMPDIR=" + s.tmp, "LANG=C.UTF-8", "USER=app"}
	path, err := lookPath(name)
	if s.iso == nil {
		cmd := exec.CommandContext(ctx, path, args...)
		cmd.Env = env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if s.uid >= 0 {
			cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.uid), NoSetGroups: true}
		}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 5 * time.Second
		return &buildpack.Cmd{Cmd: cmd}
	}
	cmd := isolate.Command(ctx, isolate.Spec{
		ID: fmt.Sprintf("%s-%d", s.iso.id, s.iso.n.Add(1)), Root: s.iso.root,
		User: s.user, UID: s.uid, Hostname: s.user + ".build",
		Args: append([]string{path}, args...), Env: env,
		Mounts: s.iso.mounts, Limits: s.iso.limits, Cgroup: s.iso.cgroup,
	})
	if err != nil {
		// Paths are the same in the sandbox: a command missing here
		// fails as it would have on the host.
		cmd.Cmd.Err = err
	}
	return &buildpack.Cmd{Cmd: cmd.Cmd, Seal: cmd.Seal}
}

// lookPath finds a program on the build's PATH, not the server's: the
// server's may hold directories the build user cannot enter. A path is
// checked as exec checks it.
func lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		info, err := os.Stat(name)
		if err != nil {
			return name, err
		}
		if !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			return name, &fs.PathError{Op: "exec", Path: name, Err: fs.ErrPermission}
		}
		return name, nil
	}
	for _, dir := range filepath.SplitList(buildPath) {
		p := filepath.Join(dir, name)
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return name, &exec.Error{Name: name, Err: exec.ErrNotFound}
}

// appUID returns the app's build user ID, giving it one on its first build:
// the first free ID of the range, claimed in the uids bucket so that no
// other app, on any builder, can take it too.
func (b *Builder) appUID(ctx context.Context, app string) (int, error) {
	a, _, err := b.st.Apps.Get(ctx, app)
	if err != nil {
		return 0, err
	}
	if a.UID != 0 {
		return a.UID, nil
	}
	taken, err := b.st.UIDs.List(ctx, "")
	if err != nil {
		return 0, err
	}
	used := map[string]bool{}
	for _, c := range taken {
		used[c.Key] = true
	}
	for uid := firstUID; uid <= lastUID; uid++ {
		key := strconv.Itoa(uid)
		if used[key] {
			continue
		}
		if _, err := b.st.UIDs.Create(ctx, key, app); errors.Is(err, skiff.ErrConflict) {
			continue
		} else if err != nil {
			return 0, err
		}
		a, _, err := b.st.Apps.Update(ctx, app, func(a *skiff.App) error {
			if a.UID == 0 {
				a.UID = uid
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		if a.UID != uid {
			_ = b.st.UIDs.Delete(ctx, key) // another build gave it one meanwhile
		}
		return a.UID, nil
	}
	return 0, fmt.Errorf("no free build user ID left in %d-%d", firstUID, lastUID)
}

// chownTree gives the tree at dir to uid.
func chownTree(dir string, uid int) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
}

// forget deletes what the builder keeps of a destroyed app: its build
// cache, then its claim on a user ID, so that an app given the same ID
// later finds none of its files. An app created again under the same name
// meanwhile keeps the ID it has.
func (b *Builder) forget(ctx context.Context, app string) {
	l := b.appLock(app)
	l.Lock()
	defer l.Unlock()
	log := b.log.With("app", app)
	if err := os.RemoveAll(filepath.Join(b.cfg.CacheDir, app)); err != nil {
		log.Error("delete the build cache of a destroyed app", "err", err)
		return
	}
	claims, err := b.st.UIDs.List(ctx, "")
	if err != nil {
		log.Warn("free the user ID of a destroyed app", "err", err)
		return
	}
	for _, c := range claims {
		if c.Value != app {
			continue
		}
		if a, _, err := b.st.Apps.Get(ctx, app); err == nil && strconv.Itoa(a.UID) == c.Key {
			continue
		} else if err != nil && !errors.Is(err, skiff.ErrNotFound) {
			log.Warn("free the user ID of a destroyed app", "err", err)
			return
		}
		if err := b.st.UIDs.Delete(ctx, c.Key); err != nil {
			log.Warn("free the user ID of a destroyed app", "uid", c.Key, "err", err)
			continue
		}
		log.Info("destroyed app forgotten", "uid", c.Key)
	}
}

// remembered lists the apps the builder keeps something of: a build cache
// on this machine or a user ID.
func (b *Builder) remembered(ctx context.Context) ([]string, error) {
	var names []string
	entries, err := os.ReadDir(b.cfg.CacheDir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	claims, err := b.st.UIDs.List(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, c := range claims {
		names = append(names, c.Value)
	}
	return names, nil
}
