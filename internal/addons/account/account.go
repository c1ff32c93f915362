// Package account is the OS user the add-ons' servers run as: the service
// host's PostgreSQL and Redis servers, and the backup package's scratch
// servers. When this process is root they run as an unprivileged system
// user, created if missing (PostgreSQL refuses to run as root, and a
// backup is untrusted input); otherwise they run as this process's user.
//
// Ensure finds (or makes) the account; Reachable checks, before a server
// is pointed at a directory, that the account can get to it, and says
// what to chmod when it cannot; Chown gives it the files it must own.
// PostgresBin finds the PostgreSQL programs the servers are run from.
package account

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// DefaultName is the name of the user the servers run as unless they are
// told otherwise.
const DefaultName = "skiff-addons"

// Account is the OS user the add-ons' servers run as.
type Account struct {
	// Name is the user's name.
	Name string
	// UID is the user's ID and GID its primary group's.
	UID, GID int
	// Cred starts a process as the user (exec.Cmd's
	// SysProcAttr.Credential); nil when the servers run as this process's
	// user, and then nothing needs to be given to them.
	Cred *syscall.Credential
}

// useraddMu serialises the creation of users within this process: two
// useradd at once may fail to lock /etc/passwd.
var useraddMu sync.Mutex

// Ensure returns the account the servers run as. When this process is
// root, that is the user name, created as a system user without a home
// or a login shell if it does not exist; it must not be root. Otherwise
// it is this process's own user, and name is not used.
func Ensure(name string) (Account, error) {
	if os.Geteuid() != 0 {
		return self(), nil
	}
	useraddMu.Lock()
	defer useraddMu.Unlock()
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if !errors.As(err, &unknown) {
			return Account{}, fmt.Errorf("look up user %s: %w", name, err)
		}
		useradd, lerr := exec.LookPath("useradd")
		if lerr != nil {
			useradd = "/usr/sbin/useradd" // PATH may leave out sbin
		}
		out, aerr := exec.Command(useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", name).CombinedOutput()
		// Whatever useradd said, the user may be there now: another
		// process may have made it meanwhile.
		if u, err = user.Lookup(name); err != nil {
			if aerr == nil {
				aerr = err
			}
			return Account{}, fmt.Errorf("create user %s with useradd: %v: %s (create it yourself, or choose an existing unprivileged user)",
				name, aerr, strings.TrimSpace(string(out)))
		}
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return Account{}, fmt.Errorf("user %s: %w", name, err)
	}
	if uid == 0 {
		return Account{}, fmt.Errorf("user %s is root, and PostgreSQL refuses to run as root: choose an unprivileged user", name)
	}
	return Account{Name: name, UID: uid, GID: gid,
		Cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}, nil
}

// self is the account of this process's user.
func self() Account {
	a := Account{UID: os.Getuid(), GID: os.Getgid()}
	a.Name = "uid " + strconv.Itoa(a.UID)
	if u, err := user.LookupId(strconv.Itoa(a.UID)); err == nil {
		a.Name = u.Username
	}
	return a
}

// Reachable says why the account cannot traverse every directory from /
// down to dir (each must grant it execute permission): which directory
// refuses it, and what to chmod. It returns nil when the account can.
// Only the account's primary group counts: a process started with Cred
// has no supplementary groups.
func (a Account) Reachable(dir string) error {
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		perm := fi.Mode().Perm()
		// Like the kernel, the first class the account is in decides:
		// an owner without the owner's bit is refused whatever others get.
		var bit os.FileMode = 0o001
		switch {
		case int(st.Uid) == a.UID:
			bit = 0o100
		case int(st.Gid) == a.GID:
			bit = 0o010
		}
		if perm&bit == 0 {
			return fmt.Errorf("%s is mode %04o, owned by uid %d: let others through it (chmod o+x %s)", p, perm, st.Uid, p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// Chown gives path to the account, when the servers run as another user
// than this process's. It does not follow a symbolic link: a server may
// have put one where its files are.
func (a Account) Chown(path string) error {
	if a.Cred == nil {
		return nil
	}
	return os.Lchown(path, a.UID, a.GID)
}

// PostgresBin is the bin directory of the newest PostgreSQL installed the
// Debian way (/usr/lib/postgresql/VERSION/bin) that holds program, or ""
// if there is none.
func PostgresBin(program string) string {
	return newestBin("/usr/lib/postgresql", program)
}

// newestBin is the newest root/VERSION/bin that holds program, or "".
func newestBin(root, program string) string {
	dirs, _ := filepath.Glob(filepath.Join(root, "*", "bin"))
	best, bestV := "", -1.0
	for _, d := range dirs {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, program)); err == nil && v > bestV {
			best, bestV = d, v
		}
	}
	return best
}
