// Command deploy measures the time from `skiff deploy` to the first 200
// from the new release through the router, for a small app, on a skiff
// server of its own (random loopback ports, a temporary data directory).
//
//	go run ./bench/deploy -skiff bin/skiff -n 15
//
// bench/deploy/run.sh builds the binary and runs it.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

const server = `import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("release=%s\n" % os.environ["SKIFF_RELEASE"]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`

func main() {
	bin := flag.String("skiff", "bin/skiff", "the skiff binary")
	n := flag.Int("n", 15, "deploys to time")
	flag.Parse()
	if err := run(*bin, *n); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func run(bin string, n int) error {
	bin, _ = filepath.Abs(bin)
	tmp, err := os.MkdirTemp("", "skiff-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	data, home, app := filepath.Join(tmp, "data"), filepath.Join(tmp, "home"), filepath.Join(tmp, "app")
	os.MkdirAll(app, 0o755)
	os.WriteFile(filepath.Join(app, "server.py"), []byte(server), 0o644)
	os.WriteFile(filepath.Join(app, "Procfile"), []byte("web: python3 server.py\n"), 0o644)
	apiAddr, rtrAddr := freeAddr(), freeAddr()

	srv := exec.Command(bin, "server", "--data", data, "--api-addr", apiAddr, "--router-addr", rtrAddr,
		"--domain", "bench.test", "--node-name", "bench", "--drain-delay", "200ms")
	logf, _ := os.Create(filepath.Join(tmp, "server.log"))
	srv.Stdout, srv.Stderr = logf, logf
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
	}()
	if err := waitHealthy("http://" + apiAddr + "/healthz"); err != nil {
		return err
	}
	token, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		return err
	}
	cli := func(args ...string) error {
		cmd := exec.Command(bin, args...)
		cmd.Dir = app
		cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
			"SKIFF_API=http://"+apiAddr, "SKIFF_TOKEN="+strings.TrimSpace(string(token)), "SKIFF_APP=bench")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("skiff %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := cli("apps", "create", "bench"); err != nil {
		return err
	}
	client := &http.Client{Timeout: 5 * time.Second}
	var times []time.Duration
	for i := 1; i <= n; i++ {
		// New content each time, so every deploy builds a new image.
		os.WriteFile(filepath.Join(app, "build.txt"), []byte(fmt.Sprint(i, time.Now().UnixNano())), 0o644)
		start := time.Now()
		if err := cli("deploy"); err != nil {
			return err
		}
		want := fmt.Sprintf("release=v%d\n", i)
		for {
			req, _ := http.NewRequest("GET", "http://"+rtrAddr+"/", nil)
			req.Host = "bench.bench.test"
			resp, err := client.Do(req)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 && string(body) == want {
					break
				}
			}
			if time.Since(start) > 60*time.Second {
				return fmt.Errorf("deploy %d: no 200 from v%d within 60s", i, i)
			}
			time.Sleep(2 * time.Millisecond)
		}
		d := time.Since(start)
		times = append(times, d)
		fmt.Printf("deploy %2d: %v\n", i, d.Round(time.Millisecond))
	}
	sort.Slice(times, func(a, b int) bool { return times[a] < times[b] })
	fmt.Printf("\ndeploy to first 200 over %d deploys: median %v, min %v, p90 %v, max %v\n", n,
		times[len(times)/2].Round(time.Millisecond), times[0].Round(time.Millisecond),
		times[len(times)*9/10].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
	return nil
}

func waitHealthy(url string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("skiff server not healthy within 60s")
}
