package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// healthPy listens at once but answers /health with 503 for its first
// three requests, and with 400 to a Host other than localhost.
const healthPy = `import http.server, os
n = 0
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global n
        code = 200
        if self.path == "/health":
            n += 1
            code = 503 if n <= 3 else 200
            if self.headers.get("Host") != "localhost":
                code = 400
            print("health %d %d" % (n, code), flush=True)
        self.send_response(code); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`

func TestHealthCheckPathMustAnswerBeforeUp(t *testing.T) {
	files := defaultFiles()
	files["health.py"] = healthPy
	h := newHarnessFiles(t, Config{StopGrace: 5 * time.Second, DrainDelay: -1}, files)
	h.updateRelease(func(r *skiff.Release) { r.HealthCheck = "/health" })
	h.assign("h1", "web", "exec python3 -u health.py")
	var inst skiff.Instance
	eventually(t, 10*time.Second, func() bool { inst, _ = h.instance("h1"); return inst.State == skiff.StateUp })
	eventually(t, 5*time.Second, func() bool { return strings.Contains(h.logs("web.1"), "health 4") })
	logs := h.logs("web.1")
	// Up only after the fourth check, the first 200; none after it.
	for _, want := range []string{"app[web.1]: health 1 503", "app[web.1]: health 3 503", "app[web.1]: health 4 200"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "health 5") {
		t.Errorf("probed after the instance was up:\n%s", logs)
	}
	// The user hears why the instance is not up yet, once per answer.
	if n := strings.Count(logs, "platform[web.1]: Health check GET /health answered 503 Service Unavailable"); n != 1 {
		t.Errorf("%d platform lines on the 503s, want 1:\n%s", n, logs)
	}
}

func TestHealthCheckAcceptsRedirectAndRefusesErrors(t *testing.T) {
	files := defaultFiles()
	files["redirect.py"] = `import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print("GET", self.path, flush=True)
        if self.path == "/ok":
            self.send_response(302); self.send_header("Location", "/broken")
        else:
            self.send_response(500)
        self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`
	h := newHarnessFiles(t, Config{StopGrace: 5 * time.Second, DrainDelay: -1}, files)

	// A 302 is an answer; its target (a 500) is not fetched.
	h.updateRelease(func(r *skiff.Release) { r.HealthCheck = "ok" })
	h.assign("r1", "web", "exec python3 -u redirect.py")
	eventually(t, 10*time.Second, func() bool { i, _ := h.instance("r1"); return i.State == skiff.StateUp })

	// A 500 keeps the instance starting.
	h.updateRelease(func(r *skiff.Release) { r.HealthCheck = "/broken" })
	h.assign("r3", "web", "exec python3 -u redirect.py")
	eventually(t, 10*time.Second, func() bool { return strings.Count(h.logs("web.1"), "GET /broken") >= 5 })
	if logs := h.logs("web.1"); !strings.Contains(logs, "platform[web.1]: Health check GET /broken answered 500 Internal Server Error") {
		t.Errorf("no platform line on the 500:\n%s", logs)
	}
	if i, _ := h.instance("r3"); i.State != skiff.StateStarting {
		t.Fatalf("instance answering 500 = %+v, want starting", i)
	}
}

// TestFailingHealthCheckRestarts: a running instance whose health check
// fails HealthFailures times in a row is stopped and started again.
func TestFailingHealthCheckRestarts(t *testing.T) {
	files := defaultFiles()
	files["sick.py"] = `import http.server, os
n = 0
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global n
        n += 1
        code = 200 if n <= 2 else 500
        print("health %d %d" % (n, code), flush=True)
        self.send_response(code); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`
	h := newHarnessFiles(t, Config{StopGrace: 5 * time.Second, DrainDelay: -1, HealthInterval: 100 * time.Millisecond, HealthFailures: 3}, files)
	h.updateRelease(func(r *skiff.Release) { r.HealthCheck = "/health" })
	h.assign("s1", "web", "exec python3 -u sick.py")
	var inst skiff.Instance
	eventually(t, 20*time.Second, func() bool { inst, _ = h.instance("s1"); return inst.Restarts >= 1 })
	if !strings.Contains(inst.ExitReason, "health check failed 3 times in a row") {
		t.Errorf("exit reason %q", inst.ExitReason)
	}
	logs := h.logs("web.1")
	for _, want := range []string{"Health check failed (1 of 3): GET /health answered 500", "Health check failed (3 of 3)", "restarting it"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	// Started again, it answers and is up.
	eventually(t, 20*time.Second, func() bool { inst, _ = h.instance("s1"); return inst.State == skiff.StateUp && inst.Restarts >= 1 })
}
