package buildpack

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

type uidBox struct {
	uid       int
	home, tmp string
}

func (s uidBox) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if p, err := exec.LookPath(name); err == nil && name[0] != '/' {
		for _, d := range []string{"/usr/local/bin", "/usr/bin", "/bin"} {
			if _, err := os.Stat(filepath.Join(d, name)); err == nil {
				p = filepath.Join(d, name)
				break
			}
		}
		name = p
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"PATH=/usr/local/go/bin:/usr/local/bin:/usr/bin:/bin", "HOME=" + s.home, "TMPDIR=" + s.tmp, "LANG=C.UTF-8", "USER=app"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.uid), NoSetGroups: true}}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

func chownAll(t *testing.T, dir string, uid int) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error { return os.Lchown(p, uid, uid) })
}

func TestZZUID(t *testing.T) {
	const uid = 200077
	base, _ := os.MkdirTemp("/tmp", "uidtest")
	defer os.RemoveAll(base)
	os.Chmod(base, 0o755)
	ix := pyStartIndex(t, pyWheelSpec{name: "alpha", version: "1.0", script: true})
	cache := filepath.Join(base, "cache")
	os.MkdirAll(cache, 0o700)
	chownAll(t, cache, uid)
	for i := 0; i < 2; i++ {
		work, _ := os.MkdirTemp(base, "w")
		dir := filepath.Join(work, "app")
		for _, d := range []string{dir, filepath.Join(work, "home"), filepath.Join(work, "tmp")} {
			os.MkdirAll(d, 0o755)
		}
		os.WriteFile(filepath.Join(dir, "requirements.txt"), []byte("alpha==1.0\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("x"), 0o644)
		chownAll(t, work, uid)
		var buf bytes.Buffer
		b := &Build{Dir: dir, CacheDir: cache, Env: map[string]string{"PIP_INDEX_URL": ix.url(), "GREETING": "hi"}, Out: &buf,
			Sandbox: uidBox{uid: uid, home: filepath.Join(work, "home"), tmp: filepath.Join(work, "tmp")}}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		start := time.Now()
		_, err := Python().Compile(ctx, b)
		t.Logf("python build %d in %v: %v\n%s", i, time.Since(start), err, buf.String())
		buf.Reset()
		bp := t.TempDir()
		v2WriteBuildpack(t, bp)
		os.Chmod(filepath.Dir(bp), 0o755)
		os.Chmod(bp, 0o755)
		_, err = HerokuV2(bp).Compile(ctx, b)
		t.Logf("v2 build %d: %v\n%s", i, err, buf.String())
		cancel()
		out, err := exec.Command("bash", "-c", "ls -la .venv/bin | head; readlink .venv/bin/python3; cd "+dir+" && HOME="+dir+" bash -c '. .profile.d/python.sh; alpha-hello; python -V'").CombinedOutput()
		t.Logf("%s %v", out, err)
	}
}
