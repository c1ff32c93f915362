package isolate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Init runs the sandbox's first process when this binary was started as
// one, and returns its exit code and true; otherwise it returns at once
// with false. Call it first thing in main (and in TestMain):
//
//	if code, ok := isolate.Init(); ok {
//		os.Exit(code)
//	}
func Init() (int, bool) {
	if len(os.Args) == 0 {
		return 0, false
	}
	switch os.Args[0] {
	case initArg:
		return runInit(), true
	case runArg:
		return runCommand(), true
	}
	return 0, false
}

// runInit reads the spec from fd 3, builds the sandbox, starts the
// command and supervises it, reporting on fd 4.
func runInit() int {
	// no_new_privs is an attribute of a thread, not of the process: the
	// thread that sets it must be the one that forks the command, so init
	// stays on one thread throughout.
	runtime.LockOSThread()
	status := os.NewFile(4, "status")
	say := func(r report) error { return json.NewEncoder(status).Encode(r) }
	var spec Spec
	specFile := os.NewFile(3, "spec")
	err := json.NewDecoder(specFile).Decode(&spec)
	specFile.Close()
	if err != nil {
		say(report{Error: fmt.Sprintf("read the spec: %v", err), Code: 125})
		return 125
	}
	// Signals are caught from here on: as the first process of its PID
	// namespace, init would otherwise ignore them.
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP,
		syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	if err := buildRoot(&spec); err != nil {
		say(report{Error: err.Error(), Code: 125})
		return 125
	}
	if err := dropPrivileges(spec.UID); err != nil {
		say(report{Error: fmt.Sprintf("become %s: %v", spec.User, err), Code: 125})
		return 125
	}
	if spec.DieWithParent {
		// Set after dropping privileges, which clears it. A parent that
		// died before is caught below: the status pipe has no reader.
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
			say(report{Error: fmt.Sprintf("set the parent death signal: %v", err), Code: 125})
			return 125
		}
	}
	pid, code, err := startCommand(&spec)
	if err != nil {
		say(report{Error: err.Error(), Code: code})
		return code
	}
	if err := say(report{Started: true}); err != nil && spec.DieWithParent {
		// Nobody to report to: init's end takes every process with it.
		return 125
	}
	ws := supervise(pid, signals)
	if ws.Signaled() {
		say(report{Code: -1, Signal: int(ws.Signal())})
		return 128 + int(ws.Signal())
	}
	say(report{Code: ws.ExitStatus()})
	return ws.ExitStatus()
}

// supervise forwards signals to every process of the sandbox and reaps
// them until the command exits; then it ends every process left and
// returns the command's status.
func supervise(pid int, signals <-chan os.Signal) syscall.WaitStatus {
	var main syscall.WaitStatus
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			// -1: every process init may signal, which is every other
			// process of the sandbox, all of them the app's user's.
			_ = syscall.Kill(-1, sig.(syscall.Signal))
			continue
		}
		for {
			var ws syscall.WaitStatus
			wpid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err != nil || wpid <= 0 {
				break
			}
			if wpid == pid {
				main = ws
				_ = syscall.Kill(-1, syscall.SIGKILL)
				for {
					if _, err := syscall.Wait4(-1, nil, 0, nil); errors.Is(err, syscall.ECHILD) {
						return main
					}
				}
			}
		}
	}
	return main
}

// startCommand starts the command as a child of init: a session leader
// with the terminal on its standard input as its controlling terminal,
// or the leader of a process group. On failure it returns the exit code
// a shell would: 127 for a command not found, else 126.
func startCommand(spec *Spec) (int, int, error) {
	path, err := lookPath(spec.Args[0], spec.Env)
	if err != nil {
		return 0, 127, err
	}
	pid, err := syscall.ForkExec(path, spec.Args, &syscall.ProcAttr{
		Dir:   spec.Dir,
		Env:   spec.Env,
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setsid: spec.TTY, Setctty: spec.TTY, Setpgid: !spec.TTY},
	})
	if errors.Is(err, syscall.ENOENT) {
		return 0, 127, fmt.Errorf("start %s: %w", spec.Args[0], err)
	} else if err != nil {
		return 0, 126, fmt.Errorf("start %s: %w", spec.Args[0], err)
	}
	return pid, 0, nil
}

// lookPath finds name in the PATH of env, in the sandbox.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := "/usr/local/bin:/usr/bin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: command not found in the sandbox's PATH %s", name, path)
}

// dropPrivileges makes init (and so the command) the app's user, with no
// capabilities and no way to gain any (no setuid binaries, no file
// capabilities).
func dropPrivileges(uid int) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	if err := syscall.Setgroups([]int{uid}); err != nil {
		return err
	}
	if err := syscall.Setresgid(uid, uid, uid); err != nil {
		return err
	}
	return syscall.Setresuid(uid, uid, uid)
}

// buildRoot assembles the sandbox's root on a tmpfs at spec.Root, makes
// it the root, and names the host.
func buildRoot(spec *Spec) error {
	step := func(what string, err error) error {
		if err != nil {
			return fmt.Errorf("build the sandbox's root: %s: %w", what, err)
		}
		return nil
	}
	// Nothing mounted here reaches the host, nor anything there here.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return step("make mounts private", err)
	}
	root := spec.Root
	const nosuid = unix.MS_NOSUID | unix.MS_NODEV
	if err := unix.Mount("tmpfs", root, "tmpfs", nosuid, "mode=0755,size=1m"); err != nil {
		return step("mount the root", err)
	}
	in := func(p string) string { return filepath.Join(root, p) }
	for _, d := range hostDirs {
		if err := showHost(d, in(d)); err != nil {
			return step(d, err)
		}
	}
	if err := os.Mkdir(in("/etc"), 0o755); err != nil {
		return step("/etc", err)
	}
	for _, name := range hostEtc {
		if err := showHost("/etc/"+name, in("/etc/"+name)); err != nil {
			return step("/etc/"+name, err)
		}
	}
	for name, content := range etcFiles(spec) {
		if err := os.WriteFile(in("/etc/"+name), []byte(content), 0o644); err != nil {
			return step("/etc/"+name, err)
		}
	}
	if err := os.Mkdir(in("/app"), 0o755); err != nil {
		return step("/app", err)
	}
	if spec.Image != "" {
		if err := bind(spec.Image, in("/app"), false); err != nil {
			return step("/app", err)
		}
	}
	size := fmt.Sprint(spec.TmpSize)
	for _, m := range []struct{ dir, opts string }{
		{home(spec), fmt.Sprintf("mode=0700,uid=%d,gid=%d,size=%s", spec.UID, spec.UID, size)},
		{"/tmp", "mode=1777,size=" + size},
	} {
		if err := os.MkdirAll(in(m.dir), 0o755); err != nil {
			return step(m.dir, err)
		}
		if err := unix.Mount("tmpfs", in(m.dir), "tmpfs", nosuid, m.opts); err != nil {
			return step(m.dir, err)
		}
	}
	if err := os.Mkdir(in("/proc"), 0o555); err != nil {
		return step("/proc", err)
	}
	if err := unix.Mount("proc", in("/proc"), "proc", nosuid|unix.MS_NOEXEC, ""); err != nil {
		return step("/proc", err)
	}
	if err := buildDev(in("/dev"), size); err != nil {
		return step("/dev", err)
	}
	for _, m := range spec.Mounts {
		if err := mountPoint(m.Source, in(m.Target)); err != nil {
			return step(m.Target, err)
		}
		if err := bind(m.Source, in(m.Target), m.Writable); err != nil {
			return step(m.Target, err)
		}
	}
	if err := pivot(root); err != nil {
		return step("pivot_root", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY|nosuid, ""); err != nil {
		return step("make the root read-only", err)
	}
	return step("set the host name", unix.Sethostname([]byte(spec.Hostname)))
}

// buildDev makes a minimal /dev: the harmless devices of the host, a
// private devpts for terminals, and a /dev/shm.
func buildDev(dev, size string) error {
	if err := os.Mkdir(dev, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=64k"); err != nil {
		return err
	}
	for _, name := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		p := filepath.Join(dev, name)
		if err := os.WriteFile(p, nil, 0o666); err != nil {
			return err
		}
		if err := unix.Mount("/dev/"+name, p, "", unix.MS_BIND, ""); err != nil {
			return err
		}
	}
	for _, d := range []string{"pts", "shm"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount("devpts", filepath.Join(dev, "pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC,
		"newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", filepath.Join(dev, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV,
		"mode=1777,size="+size); err != nil {
		return err
	}
	for name, target := range map[string]string{"ptmx": "pts/ptmx", "fd": "/proc/self/fd",
		"stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	return nil
}

// showHost shows the host's path at dst, read-only: a symlink as the
// same symlink when the sandbox shows where it leads, a directory or file
// bind-mounted. A path the host lacks is left out.
func showHost(path, dst string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode()&os.ModeSymlink != 0:
		resolved, err := filepath.EvalSymlinks(path)
		if err != nil || shown(resolved) {
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		}
		// Elsewhere, as /etc/resolv.conf is with systemd-resolved
		// (/run/systemd/resolve/stub-resolv.conf): what it leads to.
		return showHost(resolved, dst)
	case fi.IsDir():
		if err := os.Mkdir(dst, 0o755); err != nil {
			return err
		}
	default:
		if err := os.WriteFile(dst, nil, 0o644); err != nil {
			return err
		}
	}
	return bind(path, dst, false)
}

// shown reports whether the sandbox shows the host's path p (free of
// symlinks) at the same place.
func shown(p string) bool {
	for _, d := range hostDirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	for _, name := range hostEtc {
		if d := "/etc/" + name; p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// mountPoint makes an empty directory or file at dst, after what src
// is, to mount src on.
func mountPoint(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return os.MkdirAll(dst, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// bind mounts src at dst, read-only unless writable, never with setuid
// programs or device files.
func bind(src, dst string, writable bool) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_NOSUID | unix.MS_NODEV)
	if !writable {
		flags |= unix.MS_RDONLY
	}
	return unix.Mount("", dst, "", flags, "")
}

// pivot makes root the root and lets go of the old one.
func pivot(root string) error {
	if err := os.Chdir(root); err != nil {
		return err
	}
	// With new and old root the same directory, the old root ends up
	// mounted over the new one, where it can be detached.
	if err := unix.PivotRoot(".", "."); err != nil {
		return err
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return err
	}
	return os.Chdir("/")
}
