package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/testkit"
)

// testTools is the Tools of a test: everything under a temporary
// directory that the scratch servers' user can reach.
func testTools(t *testing.T) Tools {
	t.Helper()
	dir, err := os.MkdirTemp("", "skiff-backup-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return Tools{TempDir: dir}
}

// verifyCase is a file given to Verify with the contents it is said to
// have been captured with.
type verifyCase struct {
	name string
	file string
	want map[string]int64
	err  string // what Verify's error must say; "" for none
}

// checkVerify verifies each case's file as a backup of kind, in parallel:
// a case without an error must get the note match.
func checkVerify(t *testing.T, tools Tools, kind, match string, cases []verifyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			note, err := tools.Verify(t.Context(), kind, tc.file, tc.want)
			t.Logf("note %q, err %v", note, err)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if note != match {
					t.Errorf("note %q, want %q", note, match)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Verify: %v, want an error saying %q", err, tc.err)
			}
		})
	}
}

// writeFile writes b to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// flipped is b with bytes in its middle inverted.
func flipped(b []byte) []byte {
	c := bytes.Clone(b)
	for i := len(c) / 2; i < len(c)/2+16 && i < len(c); i++ {
		c[i] ^= 0xff
	}
	return c
}

// fullDisk is a writer whose disk fills after a few bytes.
type fullDisk struct{ n int }

func (f *fullDisk) Write(p []byte) (int, error) {
	const room = 100
	if f.n+len(p) > room {
		n := room - f.n
		f.n = room
		return n, &os.PathError{Op: "write", Path: "/var/lib/skiff/backups/x", Err: syscall.ENOSPC}
	}
	f.n += len(p)
	return len(p), nil
}

// checkDiskFull checks that err says the disk is full, and where.
func checkDiskFull(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("capture into a full disk succeeded")
	}
	if !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "/var/lib/skiff/backups/x") {
		t.Errorf("error does not say the disk is full, and where: %v", err)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("error is not ENOSPC: %v", err)
	}
}

// argvHolding is the command lines of processes that contain s.
func argvHolding(s string) []string {
	var found []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(s)) {
			found = append(found, string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
		}
	}
	return found
}

func TestScratchDirMustBeReachable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("scratch servers run as another user only when we are root")
	}
	dir := t.TempDir() // 0700, root's
	_, _, err := Tools{}.ScratchPostgres(t.Context(), dir)
	if err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("ScratchPostgres in a directory its user cannot reach: %v", err)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 10433: "10,433", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

// smallDisk is Tools whose TempDir is a file system of size bytes, or
// skips the test when it cannot mount one.
func smallDisk(t *testing.T, size int) Tools {
	t.Helper()
	tools := testTools(t)
	if err := syscall.Mount("tmpfs", tools.TempDir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0711", size)); err != nil {
		t.Skipf("cannot mount a small file system: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(tools.TempDir, syscall.MNT_DETACH) })
	return tools
}

func TestFullTempDir(t *testing.T) {
	t.Parallel()
	t.Run("redis capture", func(t *testing.T) {
		t.Parallel()
		url, c := startRedisApp(t, testTools(t))
		if err := c[0].Set(t.Context(), "big", testkit.RandomText(512<<10), 0).Err(); err != nil {
			t.Fatal(err)
		}
		tools := smallDisk(t, 256<<10)
		_, err := tools.CaptureRedis(t.Context(), url, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), tools.TempDir) ||
			!errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("capture with a full TempDir: %v", err)
		}
		t.Log(err)
	})
	t.Run("postgres verify", func(t *testing.T) {
		t.Parallel()
		tools := smallDisk(t, 4<<20)
		app := startApp(t, testTools(t))
		dump, counts := capturePostgres(t, testTools(t), app)
		_, err := tools.Verify(t.Context(), skiff.AddonPostgres, dump, counts)
		if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), tools.TempDir) ||
			!errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("verify with a full TempDir: %v", err)
		}
		t.Log(err)
	})
}

func TestScratchServersStopWithTheirContext(t *testing.T) {
	t.Parallel()
	tools := testTools(t)
	for _, tc := range []struct {
		name  string
		start func(context.Context) (string, func(), error)
	}{
		{"postgres", func(ctx context.Context) (string, func(), error) { return tools.ScratchPostgres(ctx, "") }},
		{"redis", func(ctx context.Context) (string, func(), error) { return tools.ScratchRedis(ctx, "", "") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(t.Context())
			url, stop, err := tc.start(ctx)
			if err != nil {
				t.Fatal(err)
			}
			u, _ := neturl.Parse(url)
			dial := func() bool {
				c, err := net.DialTimeout("tcp", u.Host, time.Second)
				if err == nil {
					c.Close()
				}
				return err == nil
			}
			if !dial() {
				t.Fatal("the server does not listen")
			}
			cancel()
			testkit.Eventually(t, 10*time.Second, "the server to stop", func() bool { return !dial() })
			stop()
			stop()
			if dirs, _ := filepath.Glob(filepath.Join(tools.TempDir, "skiff-"+tc.name+"-*")); len(dirs) > 0 {
				t.Errorf("stop left %q", dirs)
			}
		})
	}
}
