package account

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReachable(t *testing.T) {
	// base is reachable by anyone (t.TempDir's parent is 0700).
	base, err := os.MkdirTemp("", "skiff-account-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o711); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(base)
	if err != nil {
		t.Fatal(err)
	}
	// Directories made here are owner's, of group group.
	owner, group := int(fi.Sys().(*syscall.Stat_t).Uid), int(fi.Sys().(*syscall.Stat_t).Gid)
	const nobody = 65000 // neither the owner nor of the group

	for _, tc := range []struct {
		name     string
		modes    []os.FileMode // of the directories under base, outermost first
		uid, gid int
		blocked  int // index in modes of the directory named in the error; -1: reachable
	}{
		{"others may pass", []os.FileMode{0o711, 0o701}, nobody, nobody, -1},
		{"private parent", []os.FileMode{0o700, 0o711}, nobody, nobody, 0},
		{"private target", []os.FileMode{0o711, 0o770}, nobody, nobody, 1},
		{"owner", []os.FileMode{0o700}, owner, nobody, -1},
		{"owner without its bit", []os.FileMode{0o011}, owner, group, 0},
		{"group", []os.FileMode{0o710}, nobody, group, -1},
		{"group without its bit", []os.FileMode{0o701}, nobody, group, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := os.MkdirTemp(base, "case-")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o711); err != nil {
				t.Fatal(err)
			}
			var dirs []string
			for i := range tc.modes {
				dir = filepath.Join(dir, string(rune('a'+i)))
				dirs = append(dirs, dir)
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			// Chmod innermost first, so that the test can still get in.
			for i := len(dirs) - 1; i >= 0; i-- {
				if err := os.Chmod(dirs[i], tc.modes[i]); err != nil {
					t.Fatal(err)
				}
			}
			t.Cleanup(func() {
				for _, d := range dirs {
					os.Chmod(d, 0o700)
				}
			})
			a := Account{Name: "test", UID: tc.uid, GID: tc.gid}
			err = a.Reachable(dir)
			if tc.blocked < 0 {
				if err != nil {
					t.Fatalf("Reachable(%s) = %v, want nil", dir, err)
				}
				return
			}
			if want := "chmod o+x " + dirs[tc.blocked]; err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Reachable(%s) = %v, want advice to %s", dir, err, want)
			}
		})
	}

	t.Run("missing", func(t *testing.T) {
		if err := (Account{UID: nobody, GID: nobody}).Reachable(filepath.Join(base, "none")); !os.IsNotExist(err) {
			t.Fatalf("Reachable of a missing directory = %v, want not exist", err)
		}
	})
}

func TestNewestBin(t *testing.T) {
	root := t.TempDir()
	for _, d := range []struct{ version, program string }{
		{"9.6", "pg_dump"}, {"10", "pg_dump"}, {"15", "pg_dump"}, {"16", "psql"}, {"latest", "pg_dump"},
	} {
		bin := filepath.Join(root, d.version, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bin, d.program), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for program, want := range map[string]string{
		"pg_dump":  filepath.Join(root, "15", "bin"), // 16 lacks it; "latest" is no version
		"psql":     filepath.Join(root, "16", "bin"),
		"postgres": "",
	} {
		if got := newestBin(root, program); got != want {
			t.Errorf("newestBin(%s) = %q, want %q", program, got, want)
		}
	}
}

func TestPostgresBin(t *testing.T) {
	if _, err := os.Stat("/usr/lib/postgresql"); err != nil {
		t.Skip("PostgreSQL is not installed the Debian way")
	}
	for _, program := range []string{"postgres", "pg_dump", "initdb"} {
		bin := PostgresBin(program)
		if bin == "" {
			t.Fatalf("PostgresBin(%s) found nothing under /usr/lib/postgresql", program)
		}
		if _, err := os.Stat(filepath.Join(bin, program)); err != nil {
			t.Errorf("PostgresBin(%s) = %s: %v", program, bin, err)
		}
	}
	if got := PostgresBin("no-such-program"); got != "" {
		t.Errorf("PostgresBin(no-such-program) = %q, want \"\"", got)
	}
}

func TestEnsure(t *testing.T) {
	a, err := Ensure(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if a.Cred != nil || a.UID != os.Getuid() {
			t.Errorf("not root: Ensure = %+v, want this process's user and no Cred", a)
		}
		return
	}
	if a.Name != DefaultName || a.UID == 0 || a.Cred == nil || int(a.Cred.Uid) != a.UID || int(a.Cred.Gid) != a.GID {
		t.Errorf("Ensure = %+v, want the unprivileged user %s", a, DefaultName)
	}
	if _, err := Ensure("root"); err == nil || !strings.Contains(err.Error(), "is root") {
		t.Errorf("Ensure(root) = %v, want a refusal", err)
	}
}
