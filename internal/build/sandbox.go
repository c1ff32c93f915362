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
	"syscall"
	"time"

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

// sandbox runs a build's commands as the app's user (when the builder runs
// as root), with the build's own HOME and TMPDIR, in a process group that
// is killed whole when the build's context ends.
type sandbox struct {
	uid       int // -1: run as the builder's own user
	home, tmp string
}

// Command implements buildpack.Sandbox.
func (s sandbox) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, lookPath(name), args...)
	cmd.Env = []string{"PATH=" + buildPath, "HOME=" + s.home, "TMPDIR=" + s.tmp, "LANG=C.UTF-8", "USER=app"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.uid >= 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.uid), NoSetGroups: true}
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// lookPath finds a program on the build's PATH, not the server's: the
// server's may hold directories the build user cannot enter.
func lookPath(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	for _, dir := range filepath.SplitList(buildPath) {
		p := filepath.Join(dir, name)
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	return name
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
