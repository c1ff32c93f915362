package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func TestProcessEnvLayers(t *testing.T) {
	a := skiff.Assignment{App: "app", Proc: "web", Index: 2, Release: 7}
	env := processEnv(a, Layout{Root: "/img/root", Home: "/img/root", Tmp: "/inst/tmp"}, false, 20001,
		map[string]string{"FROM_APP_JSON": "default", "GREETING": "app.json", "PORT": "1", "DYNO": "x"},
		map[string]string{"GREETING": "config", "SKIFF_APP": "other", "LANG": "de_DE.UTF-8"}, nil)
	if !slices.IsSorted(env) {
		t.Errorf("env not sorted: %q", env)
	}
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	for k, want := range map[string]string{
		"HOME":          "/img/root", // Heroku's HOME=/app
		"TMPDIR":        "/inst/tmp",
		"PATH":          "/img/root/bin:/usr/local/bin:/usr/bin:/bin",
		"FROM_APP_JSON": "default",     // app.json's env fills in
		"GREETING":      "config",      // config wins over app.json
		"LANG":          "de_DE.UTF-8", // config wins over the base
		"PORT":          "20001",       // the platform wins over both
		"DYNO":          "web.2",
		"SKIFF_APP":     "app",
		"SKIFF_RELEASE": "v7",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
}

func TestWithProfile(t *testing.T) {
	root := t.TempDir()
	if got := withProfile(root, Layout{Root: root, Home: root}, "echo hi"); got != "echo hi" {
		t.Fatalf("without .profile.d the command changed: %q", got)
	}
	os.MkdirAll(filepath.Join(root, ".profile.d"), 0o755)
	os.WriteFile(filepath.Join(root, ".profile.d", "b.sh"), []byte(`export SEEN="$SEEN b"; cd /`), 0o644)
	os.WriteFile(filepath.Join(root, ".profile.d", "a.sh"), []byte(`export SEEN="$SEEN a"; NOT_EXPORTED=1`), 0o644)
	os.WriteFile(filepath.Join(root, ".profile.d", "c.txt"), []byte(`export SEEN=wrong`), 0o644)
	for _, tc := range []struct{ command, want string }{
		{`echo "seen:$SEEN"`, "seen: a b"},
		{`echo 'it'"'"'s' && echo "$NOT_EXPORTED|x" | tr x y`, "it's\n|y"},
		{`for w in one two; do printf '%s.' "$w"; done; echo`, "one.two."},
	} {
		cmd := exec.Command("/bin/bash", "-c", withProfile(root, Layout{Root: root, Home: root}, tc.command))
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != tc.want {
			t.Errorf("%s: output %q, %v; want %q", tc.command, out, err, tc.want)
		}
	}
	cmd := exec.Command("/bin/bash", "-c", withProfile(root, Layout{Root: root, Home: root}, "true && exit 7"))
	cmd.Dir = root
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
		t.Errorf("exit status: %v, want 7", err)
	}
}

// profileFiles is an image as a Python buildpack leaves it: a virtualenv
// whose bin directory a .profile.d script puts on the PATH.
func profileFiles() map[string]string {
	files := defaultFiles()
	files[".profile.d/python.sh"] = `export PATH="$HOME/.venv/bin:$PATH"` + "\n" + `export ORDER="$ORDER python"` + "\n"
	files[".profile.d/00-first.sh"] = `export ORDER=first` + "\n"
	files[".profile.d/README"] = `export ORDER=wrong` + "\n"
	files[".venv/bin/hello"] = "#!/bin/sh\necho hello from the venv\n"
	return files
}

func TestProcessEnvironmentIsHerokus(t *testing.T) {
	for _, d := range drivers() {
		t.Run(d.Name(), func(t *testing.T) { testProcessEnvironment(t, d) })
	}
}

func testProcessEnvironment(t *testing.T, d Driver) {
	h := newHarnessFiles(t, Config{StopGrace: 5 * time.Second, DrainDelay: -1, Driver: d}, profileFiles())
	h.updateRelease(func(r *skiff.Release) {
		r.Env = map[string]string{"FROM_APP_JSON": "default", "GREETING": "from app.json", "PORT": "1"}
	})
	// A command with shell syntax; its exit status is the process's.
	h.assign("e1", "worker", `hello && echo "ORDER=$ORDER HOME=$HOME APP=$PWD $([ -f "$PWD/server.py" ] && echo has-server) `+
		`GREETING=$GREETING FROM_APP_JSON=$FROM_APP_JSON PORT_SET=$([ "$PORT" != 1 ] && echo yes)" && echo "TMPDIR=$TMPDIR"; exit 7`)
	var inst skiff.Instance
	eventually(t, 10*time.Second, func() bool { inst, _ = h.instance("e1"); return inst.Restarts > 0 })
	if inst.ExitReason != "exit status 7" {
		t.Errorf("exit reason %q, want exit status 7", inst.ExitReason)
	}
	eventually(t, 5*time.Second, func() bool { return strings.Contains(h.logs("worker.1"), "TMPDIR=") })
	logs := h.logs("worker.1")
	// HOME is the app's root, as on Heroku, where the image is the app's
	// own to write (exec); the isolated driver gives a private home and
	// keeps the image read-only at /app.
	root, _ := h.cache.Unpacked(context.Background(), h.img.Digest)
	home, tmp := root, filepath.Join(h.ag.cfg.Dir, "instances", "e1", "tmp")
	if d.Name() == "isolated" {
		root, home, tmp = "/app", "/home/app", "/tmp"
	}
	for _, want := range []string{
		"app[worker.1]: hello from the venv",
		"app[worker.1]: ORDER=first python HOME=" + home + " APP=" + root + " has-server GREETING=hi FROM_APP_JSON=default PORT_SET=yes",
		"TMPDIR=" + tmp,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}

	h.assign("e2", "web", "python3 -u server.py")
	eventually(t, 10*time.Second, func() bool { inst, _ = h.instance("e2"); return inst.State == skiff.StateUp })
	if d.Name() == "exec" {
		// The process the agent watches and signals is the app itself,
		// not the shell that sourced .profile.d.
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(inst.PID) + "/cmdline")
		if !strings.Contains(string(cmdline), "server.py") {
			t.Errorf("pid %d runs %q, want the app", inst.PID, cmdline)
		}
	}
	if body, err := get("http://" + inst.Addr + "/"); err != nil || body != "hello from web.1 hi\n" {
		t.Errorf("GET = %q, %v", body, err)
	}
	h.st.Assignments.Delete(context.Background(), skiff.AssignmentKey("n1", "app", "e2"))
	eventually(t, 10*time.Second, func() bool { _, ok := h.instance("e2"); return !ok })
	if logs := h.logs("web.1"); !strings.Contains(logs, "Process exited: killed by signal 15 (SIGTERM)") {
		t.Errorf("the app did not get SIGTERM:\n%s", logs)
	}
}
