// Command deploy measures the time from `skiff deploy` to the first 200
// from the new release through the router, for a small app, on a skiff
// server of its own.
//
//	go run ./bench/deploy -skiff bin/skiff -n 15
//
// bench/deploy/run.sh builds the binary and runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/skiff-paas/skiff/bench/benchutil"
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

func run(bin string, n int) error {
	s, err := benchutil.Start(bin)
	if err != nil {
		return err
	}
	defer s.Stop()
	app := filepath.Join(s.Dir, "app")
	os.MkdirAll(app, 0o755)
	os.WriteFile(filepath.Join(app, "server.py"), []byte(server), 0o644)
	os.WriteFile(filepath.Join(app, "Procfile"), []byte("web: python3 server.py\n"), 0o644)
	if _, err := s.CLI(app, "apps", "create", "bench"); err != nil {
		return err
	}
	var times []time.Duration
	for i := 1; i <= n; i++ {
		// New content each time, so every deploy builds a new image.
		os.WriteFile(filepath.Join(app, "build.txt"), []byte(fmt.Sprint(i, time.Now().UnixNano())), 0o644)
		start := time.Now()
		if _, err := s.CLI(app, "deploy", "-a", "bench"); err != nil {
			return err
		}
		if err := s.WaitFor("bench", fmt.Sprintf("release=v%d\n", i)); err != nil {
			return err
		}
		times = append(times, time.Since(start))
		fmt.Printf("deploy %2d: %v\n", i, times[i-1].Round(time.Millisecond))
	}
	fmt.Printf("\ndeploy to first 200: %s\n", benchutil.Stats(times))
	return nil
}
