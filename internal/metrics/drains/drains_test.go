package drains

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/bus/bustest"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
	"github.com/skiff-paas/skiff/internal/testkit"
)

// syslogReceiver is a syslog server over TCP (or TLS) that keeps every
// message it is sent.
type syslogReceiver struct {
	l     net.Listener
	mu    sync.Mutex
	msgs  []string
	conns []net.Conn
}

func startSyslog(t *testing.T, addr string, cfg *tls.Config) *syslogReceiver {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		l = tls.NewListener(l, cfg)
	}
	r := &syslogReceiver{l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns = append(r.conns, c)
			r.mu.Unlock()
			go func() {
				br := bufio.NewReader(c)
				for {
					m, err := readFrames(br, 1)
					if err != nil {
						return
					}
					r.mu.Lock()
					r.msgs = append(r.msgs, m...)
					r.mu.Unlock()
				}
			}()
		}
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *syslogReceiver) addr() string { return r.l.Addr().String() }

// stop closes the listener and every connection.
func (r *syslogReceiver) stop() {
	r.l.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
}

func (r *syslogReceiver) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// appLines are the texts of the app's own lines among msgs, in order.
func appLines(msgs []string) []string {
	var out []string
	for _, m := range msgs {
		if _, text, ok := strings.Cut(m, " shop app web.1 - - "); ok {
			out = append(out, text)
		}
	}
	return out
}

// has reports whether msgs hold the app's lines from to to-1, in order
// (each at least once).
func has(msgs []string, from, to int) bool {
	next := from
	for _, l := range appLines(msgs) {
		if l == "line "+strconv.Itoa(next) {
			next++
		}
	}
	return next >= to
}

func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), bustest.Start(t), nil, store.Options{LockTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func testConfig() Config {
	return Config{Node: "n1", BatchEvery: 50 * time.Millisecond, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		StatusEvery: 50 * time.Millisecond, Timeout: 2 * time.Second}
}

// run runs a runner until the returned stop is called (or the test ends).
func run(t *testing.T, st *store.Store, cfg Config) (stop func()) {
	t.Helper()
	r, err := New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	eventually(t, 5*time.Second, "the runner to be ready", r.Ready)
	return stop
}

func addDrain(t *testing.T, st *store.Store, app, url string) skiff.Drain {
	t.Helper()
	if err := skiff.ValidateDrainURL(url); err != nil {
		t.Fatal(err)
	}
	d := skiff.Drain{ID: fmt.Sprintf("%08x", time.Now().UnixNano()&0xffffffff), App: app, URL: url, CreatedAt: time.Now().UTC()}
	if _, err := st.Drains.Create(context.Background(), d.Key(), d); err != nil {
		t.Fatal(err)
	}
	return d
}

// logLines logs lines from to to-1 of the app's web.1.
func logLines(t *testing.T, st *store.Store, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		st.Log("shop", skiff.SourceApp, "web.1", "line "+strconv.Itoa(i))
	}
	if err := st.NC.Flush(); err != nil {
		t.Fatal(err)
	}
}

func status(st *store.Store, d skiff.Drain) skiff.DrainStatus {
	s, _, _ := st.DrainStats.Get(context.Background(), skiff.DrainStatusKey(d.App, d.ID))
	return s
}

var eventually = testkit.Eventually

func TestSyslogTCP(t *testing.T) {
	st := newStore(t)
	rcv := startSyslog(t, "127.0.0.1:0", nil)
	d := addDrain(t, st, "shop", "syslog://"+rcv.addr())
	run(t, st, testConfig())
	logLines(t, st, 0, 300)
	st.Log("shop", skiff.SourceRouter, "router", `GET / 200 "curl"`)
	eventually(t, 10*time.Second, "300 lines at the receiver", func() bool { return has(rcv.messages(), 0, 300) })
	msgs := rcv.messages()
	got := appLines(msgs)
	for i, l := range got[:300] {
		if l != "line "+strconv.Itoa(i) {
			t.Fatalf("line %d is %q: out of order or repeated", i, l)
		}
	}
	if !strings.HasPrefix(msgs[0], "<190>1 "+time.Now().UTC().Format("2006-01-02T")) {
		t.Fatalf("message %q: want <190>1 and today's time", msgs[0])
	}
	eventually(t, 5*time.Second, "the router's line", func() bool {
		return strings.Contains(strings.Join(rcv.messages(), "\n"), ` shop router router - - GET / 200 "curl"`)
	})
	eventually(t, 5*time.Second, "the status to count 301 lines sent", func() bool {
		s := status(st, d)
		return s.Sent >= 301 && s.State == skiff.DrainShipping && s.Node == "n1" && s.Dropped == 0
	})
}

func TestSyslogTLS(t *testing.T) {
	st := newStore(t)
	ca := testkit.NewCA(t)
	certPEM, keyPEM := ca.Issue(t, "localhost")
	cert, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	rcv := startSyslog(t, "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	_, port, _ := net.SplitHostPort(rcv.addr())
	addDrain(t, st, "shop", "syslog+tls://localhost:"+port)

	// A receiver whose certificate no trusted CA signed gets nothing.
	other := testkit.NewCA(t)
	certPEM, keyPEM = other.Issue(t, "localhost")
	cert, _ = tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	untrusted := startSyslog(t, "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	_, port, _ = net.SplitHostPort(untrusted.addr())
	bad := addDrain(t, st, "shop", "syslog+tls://localhost:"+port)

	cfg := testConfig()
	cfg.RootCAs = ca.Pool
	run(t, st, cfg)
	logLines(t, st, 0, 50)
	eventually(t, 10*time.Second, "50 lines over TLS", func() bool { return has(rcv.messages(), 0, 50) })
	eventually(t, 5*time.Second, "the untrusted receiver's drain to fail on its certificate", func() bool {
		s := status(st, bad)
		return s.State == skiff.DrainRetrying && strings.Contains(s.Error, "certificate")
	})
	if n := len(untrusted.messages()); n != 0 {
		t.Fatalf("a receiver with an untrusted certificate got %d messages", n)
	}
}

func TestHTTPS(t *testing.T) {
	st := newStore(t)
	var mu sync.Mutex
	var bodies []string // of the batches taken, in order
	var failedIDs, takenIDs []string
	fail := 2
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		msgs, err := readFrames(bufio.NewReader(strings.NewReader(string(body))), mustAtoi(r.Header.Get("Logplex-Msg-Count")))
		user, pass, _ := r.BasicAuth()
		if err != nil || r.Method != "POST" || r.URL.Path != "/logs" || user != "u" || pass != "p" ||
			r.Header.Get("Content-Type") != "application/logplex-1" || r.Header.Get("Logplex-Frame-Id") == "" {
			t.Errorf("bad request: %s %s %v %q %q: %v", r.Method, r.URL.Path, r.Header, user, pass, err)
			http.Error(w, "bad", 400)
			return
		}
		for _, m := range msgs {
			if !strings.HasSuffix(m, "\n") {
				t.Errorf("frame %q does not end with a newline", m)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if fail > 0 {
			fail--
			failedIDs = append(failedIDs, r.Header.Get("Logplex-Frame-Id"))
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		takenIDs = append(takenIDs, r.Header.Get("Logplex-Frame-Id"))
		bodies = append(bodies, strings.Join(msgs, ""))
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	d := addDrain(t, st, "shop", strings.Replace(srv.URL, "https://", "https://u:p@", 1)+"/logs")
	cfg := testConfig()
	cfg.RootCAs = pool
	run(t, st, cfg)
	logLines(t, st, 0, 1200)
	taken := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Split(strings.TrimSuffix(strings.Join(bodies, ""), "\n"), "\n")
	}
	eventually(t, 10*time.Second, "1200 lines POSTed", func() bool { return has(taken(), 0, 1200) })
	got := appLines(taken())
	if len(got) != 1200 {
		t.Fatalf("%d lines taken, want 1200 (each once)", len(got))
	}
	for i, l := range got {
		if l != "line "+strconv.Itoa(i) {
			t.Fatalf("line %d is %q", i, l)
		}
	}
	mu.Lock()
	if len(takenIDs) < 3 || takenIDs[0] != failedIDs[0] || failedIDs[0] != failedIDs[1] {
		t.Errorf("a batch sent again should keep its frame ID: failed %v, taken %v", failedIDs, takenIDs)
	}
	mu.Unlock()
	eventually(t, 5*time.Second, "the status", func() bool {
		s := status(st, d)
		return s.Sent == 1200 && s.State == skiff.DrainShipping && strings.Contains(s.Error, "503")
	})
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// A receiver down for a while gets the lines logged meanwhile once it is
// back; a runner that stops and starts again resumes where it stopped.
func TestRetryAndResume(t *testing.T) {
	st := newStore(t)
	rcv := startSyslog(t, "127.0.0.1:0", nil)
	addr := rcv.addr()
	d := addDrain(t, st, "shop", "syslog://"+addr)
	stop := run(t, st, testConfig())
	logLines(t, st, 0, 10)
	eventually(t, 10*time.Second, "the first 10 lines", func() bool { return has(rcv.messages(), 0, 10) })

	rcv.stop()
	time.Sleep(50 * time.Millisecond) // the sender sees the connection closed
	logLines(t, st, 10, 20)
	eventually(t, 5*time.Second, "the drain to retry", func() bool { return status(st, d).State == skiff.DrainRetrying })
	time.Sleep(300 * time.Millisecond) // down for a while: several tries
	rcv = startSyslog(t, addr, nil)
	eventually(t, 10*time.Second, "lines 10-19 after the receiver came back", func() bool { return has(rcv.messages(), 10, 20) })

	stop()
	logLines(t, st, 20, 30)
	run(t, st, testConfig())
	eventually(t, 10*time.Second, "lines 20-29, logged while no runner ran", func() bool { return has(rcv.messages(), 20, 30) })
	// Resumed where it stopped, not from the drain's start: the lines the
	// first receiver took are not sent again.
	for _, l := range appLines(rcv.messages()) {
		if n := mustAtoi(strings.TrimPrefix(l, "line ")); n < 10 {
			t.Fatalf("%q sent again after the restart", l)
		}
	}
	if s := status(st, d); s.Dropped != 0 {
		t.Fatalf("dropped %d lines", s.Dropped)
	}
}

// Past its buffer a drain drops its oldest lines, counts them, and says so
// in the app's logs.
func TestBoundedBuffer(t *testing.T) {
	st := newStore(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: the receiver is down
	d := addDrain(t, st, "shop", "syslog://"+addr)
	cfg := testConfig()
	cfg.Buffer, cfg.BatchLines = 20, 5
	run(t, st, cfg)
	logLines(t, st, 0, 100)
	eventually(t, 5*time.Second, "75 lines dropped", func() bool { return status(st, d).Dropped >= 75 })
	var said bool
	eventually(t, 5*time.Second, "a platform line about the drops", func() bool {
		_ = st.ReadLogs(context.Background(), store.LogQuery{App: "shop", Tail: 50, Source: skiff.SourcePlatform}, func(l skiff.LogLine) error {
			said = said || l.Process == "drains" && strings.Contains(l.Line, "Log drain "+d.ID+" dropped") &&
				strings.Contains(l.Line, "buffer of 20 lines") && strings.Contains(l.Line, "connection refused")
			return nil
		})
		return said
	})

	rcv := startSyslog(t, addr, nil)
	// The newest lines, less those pushed out by the platform lines.
	eventually(t, 10*time.Second, "the newest lines", func() bool { return has(rcv.messages(), 85, 100) })
	got := appLines(rcv.messages())
	if len(got) > 25 {
		t.Fatalf("%d lines sent, want the buffer's 20 and the batch in flight's 5 at most: %q", len(got), got)
	}
	if !strings.Contains(strings.Join(rcv.messages(), "\n"), "shop platform drains - - Log drain "+d.ID+" dropped") {
		t.Fatalf("the drop line was not shipped too:\n%s", strings.Join(rcv.messages(), "\n"))
	}
}
