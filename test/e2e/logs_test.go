package e2e

import (
	"bufio"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// frames keeps the syslog messages a receiver was sent.
type frames struct {
	mu   sync.Mutex
	msgs []string
}

// read reads octet-counted frames from r until it ends.
func (f *frames) read(r io.Reader) {
	br := bufio.NewReader(r)
	for {
		size, err := br.ReadString(' ')
		if err != nil {
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(size))
		if err != nil {
			return
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(br, msg); err != nil {
			return
		}
		f.mu.Lock()
		f.msgs = append(f.msgs, string(msg))
		f.mu.Unlock()
	}
}

func (f *frames) has(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.msgs {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// TestLogs: an app's lines reach a TCP syslog receiver and an HTTPS
// receiver the test runs; logs --since, retention and the flood limit
// work through the CLI.
func TestLogs(t *testing.T) {
	// A syslog receiver over TCP.
	var tcp frames
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); tcp.read(c) }()
		}
	}()
	// An HTTPS receiver, as for Heroku's drains; its certificate is
	// trusted through --drain-ca.
	var https frames
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/logplex-1" || r.Header.Get("Logplex-Msg-Count") == "" {
			http.Error(w, "not logplex", 400)
			return
		}
		https.read(r.Body)
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}

	s := startServer(t, "--drain-ca", ca, "--log-rate-limit", "100", "--log-burst", "200")
	s.ok("apps", "create", "logged")
	out := s.ok("drains", "add", "-a", "logged", "syslog://"+l.Addr().String())
	if !strings.Contains(out, "Added drain") {
		t.Fatalf("drains add: %q", out)
	}
	s.ok("drains", "add", "-a", "logged", srv.URL+"/logs")
	s.fails(2, "has no port", "drains", "add", "-a", "logged", "syslog://logs.example.com")
	s.fails(5, "already drains to", "drains", "add", "-a", "logged", srv.URL+"/logs")

	// A worker that prints a flood, over the limit of 100 lines a second.
	dir := app(t, "pyapp", map[string]string{"Procfile": "web: python3 server.py\n" +
		`worker: python3 -c "import sys, time; [print('flood', i) for i in range(5000)]; sys.stdout.flush(); time.sleep(100000)"` + "\n"})
	s.ok("deploy", dir, "-a", "logged")
	s.waitFor(host("logged"), "release=v1")
	s.ok("scale", "-a", "logged", "worker=1")
	s.get(host("logged"), "/log")
	for name, f := range map[string]*frames{"syslog": &tcp, "https": &https} {
		eventually(t, 20*time.Second, "the app's line at the "+name+" receiver", func() bool {
			return f.has(" logged app web.1 - - hello from the log endpoint")
		})
		for _, want := range []string{"<190>1 ", " logged platform build - - ", " logged router router - - "} {
			eventually(t, 10*time.Second, name+" to have "+want, func() bool { return f.has(want) })
		}
	}

	var drains []struct {
		ID, URL, State string
		Status         struct{ Sent, Dropped int }
	}
	eventually(t, 10*time.Second, "both drains shipping", func() bool {
		if err := json.Unmarshal([]byte(s.ok("drains", "-a", "logged", "--json")), &drains); err != nil {
			t.Fatal(err)
		}
		return len(drains) == 2 && drains[0].State == "shipping" && drains[1].State == "shipping" &&
			drains[0].Status.Sent > 0 && drains[1].Status.Sent > 0
	})
	if table := s.ok("drains", "-a", "logged"); !strings.Contains(table, "shipping") || !strings.Contains(table, drains[0].ID) {
		t.Fatalf("drains:\n%s", table)
	}

	// The flood was cut to its burst and rate, and said so.
	eventually(t, 20*time.Second, "the flood's dropped lines in the logs", func() bool {
		return strings.Contains(s.ok("logs", "-a", "logged", "--ps", "worker.1", "-n", "20"), "lines dropped (log rate limit of 100 lines/s)")
	})
	if n := strings.Count(s.ok("logs", "-a", "logged", "--ps", "worker", "-n", "6000", "--source", "app"), "flood"); n < 200 || n > 1500 {
		t.Fatalf("%d flood lines kept of 5000, want the burst of 200 and 100 a second", n)
	}

	// --since.
	if out := s.ok("logs", "-a", "logged", "--since", "1h", "--source", "platform"); !strings.Contains(out, "Build started") {
		t.Fatalf("logs --since 1h lacks the build:\n%s", out)
	}
	if out := s.ok("logs", "-a", "logged", "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); out != "" {
		t.Fatalf("logs since an hour to come: %q", out)
	}
	if out := s.ok("logs", "-a", "logged", "--since", "1h", "-n", "2"); strings.Count(out, "\n") != 2 {
		t.Fatalf("logs --since 1h -n 2:\n%s", out)
	}
	s.fails(2, "invalid --since", "logs", "-a", "logged", "--since", "yesterday")

	// Retention.
	out = s.ok("logs", "retention", "-a", "logged")
	if !strings.Contains(out, "7d") || !strings.Contains(out, "64.0 MiB") || !strings.Contains(out, "(the server's default)") {
		t.Fatalf("logs retention:\n%s", out)
	}
	out = s.ok("logs", "retention", "-a", "logged", "--max-age", "1d12h", "--max-size", "1mb")
	if !strings.Contains(out, "1d12h") || !strings.Contains(out, "1.0 MiB") || strings.Contains(out, "default") {
		t.Fatalf("logs retention set:\n%s", out)
	}
	s.fails(2, "out of range", "logs", "retention", "-a", "logged", "--max-age", "30d")
	s.fails(2, "invalid size", "logs", "retention", "-a", "logged", "--max-size", "lots")

	// Removing drains, by ID and by URL.
	s.ok("drains", "remove", "-a", "logged", drains[0].ID)
	s.ok("drains", "remove", "-a", "logged", srv.URL+"/logs")
	s.fails(3, "has no drain", "drains", "remove", "-a", "logged", drains[0].ID)
	if out := s.ok("drains", "-a", "logged"); !strings.Contains(out, "has no log drains") {
		t.Fatalf("drains after removing both:\n%s", out)
	}
}
