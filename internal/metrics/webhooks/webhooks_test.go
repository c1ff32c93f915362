package webhooks

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/bus/bustest"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
	"github.com/skiff-paas/skiff/internal/testkit"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	box, _ := secret.New(make([]byte, secret.KeySize))
	st, err := store.Open(context.Background(), bustest.Start(t), box, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// run starts a deliverer on st and returns a func that stops it.
func run(t *testing.T, st *store.Store, cfg Config) (stop func()) {
	t.Helper()
	d, err := New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	testkit.Eventually(t, 10*time.Second, "the deliverer to be ready", d.Ready)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// receiver is an HTTPS endpoint that records what it is sent, answering
// with the statuses of fail first, then 200.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	got  []*http.Request
	body [][]byte
	fail []int
}

func newReceiver(t *testing.T, fail ...int) *receiver {
	r := &receiver{fail: fail}
	r.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got, r.body = append(r.got, req), append(r.body, body)
		status := 200
		if len(r.fail) > 0 {
			status, r.fail = r.fail[0], r.fail[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func (r *receiver) request(i int) (*http.Request, []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[i], r.body[i]
}

func addHook(t *testing.T, st *store.Store, app, url, format, secret string, events ...string) skiff.Webhook {
	t.Helper()
	sealed, err := st.Seal([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	h := skiff.Webhook{ID: "h" + strings.ReplaceAll(strings.Join(events, ""), ".", "") + format + skiff.Scope(app), App: app, URL: url,
		Events: events, Format: format, SecretSealed: sealed, CreatedAt: time.Now()}
	if _, err := st.Webhooks.Create(context.Background(), h.Key(), h); err != nil {
		t.Fatal(err)
	}
	return h
}

func status(t *testing.T, st *store.Store, h skiff.Webhook) []skiff.DeliveryResult {
	t.Helper()
	s, _, err := st.Deliveries.Get(context.Background(), h.Key())
	if err != nil {
		return nil
	}
	return s.Deliveries
}

// A failing receiver gets the delivery again after a growing wait until
// it answers 2xx; every try is signed, the signature checks out, and the
// webhook's status tells how it went.
func TestDeliverySignedAndRetried(t *testing.T) {
	st := openStore(t)
	rcv := newReceiver(t, 500, 502)
	run(t, st, Config{Backoff: 100 * time.Millisecond, Client: rcv.Client()})
	const secret = "whsec_0123456789abcdef"
	hook := addHook(t, st, "shop", rcv.URL+"/hook", skiff.FormatSkiff, secret, "deploy")

	st.Emit(skiff.Event{App: "blog", Type: skiff.EventReleaseDeployed, Message: "another app's"})
	st.Emit(skiff.Event{App: "shop", Type: skiff.EventScaled, Message: "not asked for"})
	start := time.Now()
	st.Emit(skiff.Event{App: "shop", Type: skiff.EventReleaseDeployed, Release: 3, Message: "Deployed v3"})
	testkit.Eventually(t, 10*time.Second, "three tries", func() bool { return rcv.count() >= 3 })
	took := time.Since(start)
	testkit.Eventually(t, 5*time.Second, "the delivered status", func() bool {
		ds := status(t, st, hook)
		return len(ds) == 1 && ds[0].State == skiff.DeliveryDelivered
	})
	time.Sleep(300 * time.Millisecond)
	if n := rcv.count(); n != 3 {
		t.Fatalf("%d requests, want 3: two failures and the delivery, nothing else", n)
	}
	// Waits of 100 ms, then 300 ms.
	if took < 400*time.Millisecond {
		t.Fatalf("three tries in %s: the backoff was not waited", took)
	}
	for i := range 3 {
		req, body := rcv.request(i)
		if err := Verify([]byte(secret), req.Header.Get(SignatureHeader), body, time.Now(), time.Minute); err != nil {
			t.Fatalf("try %d: %v", i+1, err)
		}
		if Verify([]byte("whsec_wrong_secret!"), req.Header.Get(SignatureHeader), body, time.Now(), 0) == nil {
			t.Fatal("a wrong secret verifies")
		}
		var ev skiff.Event
		if err := json.Unmarshal(body, &ev); err != nil || ev.App != "shop" || ev.Message != "Deployed v3" || ev.Release != 3 {
			t.Fatalf("try %d: body %s (%v)", i+1, body, err)
		}
		if req.URL.Path != "/hook" || req.Header.Get("Content-Type") != "application/json" || req.Header.Get("Skiff-Event") != skiff.EventReleaseDeployed {
			t.Fatalf("try %d: %s %s, headers %v", i+1, req.Method, req.URL, req.Header)
		}
	}
	d := status(t, st, hook)[0]
	if d.Attempts != 3 || d.Status != 200 || d.Event != skiff.EventReleaseDeployed || d.Error != "" {
		t.Fatalf("status %+v, want delivered on try 3 with 200", d)
	}
}

// A receiver that never answers 2xx gets Tries tries, and the status
// says the delivery was given up, and why.
func TestDeliveryGivenUp(t *testing.T) {
	st := openStore(t)
	rcv := newReceiver(t, 503, 503, 503, 503, 503, 503)
	run(t, st, Config{Tries: 3, Backoff: 50 * time.Millisecond, Client: rcv.Client()})
	hook := addHook(t, st, "shop", rcv.URL, skiff.FormatSkiff, "whsec_0123456789abcdef", "all")
	st.Emit(skiff.Event{App: "shop", Type: skiff.EventInstanceCrashed, Message: "web.1 crashed"})
	testkit.Eventually(t, 10*time.Second, "the failed status", func() bool {
		ds := status(t, st, hook)
		return len(ds) == 1 && ds[0].State == skiff.DeliveryFailed
	})
	d := status(t, st, hook)[0]
	if d.Attempts != 3 || d.Status != 503 || !strings.Contains(d.Error, "503") {
		t.Fatalf("status %+v", d)
	}
	time.Sleep(500 * time.Millisecond)
	if n := rcv.count(); n != 3 {
		t.Fatalf("%d tries, want 3", n)
	}
}

// Slack's format: {"text": …} with blocks, the event said in words; a
// platform webhook takes every app's events and the platform's own.
func TestSlackFormatAndPlatformWebhook(t *testing.T) {
	st := openStore(t)
	rcv := newReceiver(t)
	run(t, st, Config{Client: rcv.Client()})
	addHook(t, st, "", rcv.URL, skiff.FormatSlack, "whsec_0123456789abcdef", "node", "deploy")
	st.Emit(skiff.Event{App: "shop", Type: skiff.EventReleaseDeployed, Actor: "ada", Release: 2, Message: "Deployed v2 <fast> & well"})
	st.Emit(skiff.Event{Type: skiff.EventNodeDead, Node: "n2", Message: "Node n2 is dead"})
	testkit.Eventually(t, 10*time.Second, "two deliveries", func() bool { return rcv.count() == 2 })
	texts := map[string]bool{}
	for i := range 2 {
		_, body := rcv.request(i)
		var msg struct {
			Text   string `json:"text"`
			Blocks []struct {
				Type string `json:"type"`
			} `json:"blocks"`
		}
		if err := json.Unmarshal(body, &msg); err != nil || len(msg.Blocks) != 2 || msg.Blocks[0].Type != "section" {
			t.Fatalf("body %s: %v", body, err)
		}
		texts[msg.Text] = true
	}
	for _, want := range []string{"shop: Deployed v2 &lt;fast&gt; &amp; well", "platform: Node n2 is dead"} {
		if !texts[want] {
			t.Fatalf("texts %v, want %q", texts, want)
		}
	}
}

// Events emitted while no deliverer runs are delivered when one starts
// again: the consumers are durable.
func TestNothingLostAcrossRestart(t *testing.T) {
	st := openStore(t)
	rcv := newReceiver(t)
	stop := run(t, st, Config{Client: rcv.Client()})
	addHook(t, st, "shop", rcv.URL, skiff.FormatSkiff, "whsec_0123456789abcdef", "all")
	st.Emit(skiff.Event{App: "shop", Type: skiff.EventScaled, Message: "before"})
	testkit.Eventually(t, 10*time.Second, "the first delivery", func() bool { return rcv.count() == 1 })
	stop()
	st.Emit(skiff.Event{App: "shop", Type: skiff.EventScaled, Message: "while stopped"})
	time.Sleep(200 * time.Millisecond)
	if rcv.count() != 1 {
		t.Fatal("delivered while stopped")
	}
	run(t, st, Config{Client: rcv.Client()})
	testkit.Eventually(t, 10*time.Second, "the event of the stop", func() bool { return rcv.count() == 2 })
	_, body := rcv.request(1)
	if !strings.Contains(string(body), "while stopped") {
		t.Fatalf("second delivery %s", body)
	}
}

// smtpServer is a tiny SMTP receiver: it takes every message and hands
// over what the client sent.
type smtpServer struct {
	addr string
	msgs chan smtpMessage
}

type smtpMessage struct {
	from string
	to   []string
	data string
}

func newSMTPServer(t *testing.T) *smtpServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &smtpServer{addr: l.Addr().String(), msgs: make(chan smtpMessage, 10)}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(line string) { io.WriteString(c, line+"\r\n") }
	say("220 test ESMTP")
	var m smtpMessage
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250 test")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			m.from = strings.Trim(strings.TrimSpace(line)[10:], "<>")
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			m.to = append(m.to, strings.Trim(strings.TrimSpace(line)[8:], "<>"))
			say("250 ok")
		case cmd == "DATA":
			say("354 go on")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(l)
			}
			m.data = data.String()
			s.msgs <- m
			m = smtpMessage{}
			say("250 queued")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("502 not here")
		}
	}
}

// An alert event is emailed to its rule's addresses, besides going to
// the webhooks that take alerts.
func TestAlertEmailed(t *testing.T) {
	st := openStore(t)
	smtp := newSMTPServer(t)
	rcv := newReceiver(t)
	run(t, st, Config{Client: rcv.Client(), Mail: &Mailer{Addr: smtp.addr, From: "skiff@example.com"}})
	addHook(t, st, "shop", rcv.URL, skiff.FormatSkiff, "whsec_0123456789abcdef", "alert")
	rule := skiff.AlertRule{ID: "r1", App: "shop", Kind: skiff.AlertAppDown, Emails: []string{"ops@example.com", "ada@example.com"}}
	if _, err := st.AlertRules.Create(context.Background(), rule.Key(), rule); err != nil {
		t.Fatal(err)
	}
	st.Emit(skiff.Event{App: "shop", Type: skiff.EventAlertFiring, Message: "shop is down: no web process up",
		Alert: &skiff.AlertNotice{Rule: rule.Key(), Kind: rule.Kind, State: skiff.AlertFiring, Since: time.Now()}})
	select {
	case m := <-smtp.msgs:
		if m.from != "skiff@example.com" || strings.Join(m.to, ",") != "ops@example.com,ada@example.com" {
			t.Fatalf("mail from %s to %v", m.from, m.to)
		}
		for _, want := range []string{"Subject: Skiff [FIRING] shop: shop is down", "To: ops@example.com, ada@example.com", "Alert: app_down (firing)"} {
			if !strings.Contains(m.data, want) {
				t.Fatalf("mail lacks %q:\n%s", want, m.data)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no mail")
	}
	testkit.Eventually(t, 10*time.Second, "the alert's webhook delivery", func() bool { return rcv.count() == 1 })
}
