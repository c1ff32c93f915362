package router

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestHeadBuffered(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
		{"GET / HTTP/1.1\nHost: a\n\n", true},
		{"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nHost: a\r\n", false},
		{"GET / HTTP/1.1\r\nHost: a", false},
		{"\r\n\r\n", false}, // empty lines before a request are not its end
		{"\r\n\r\nGET / HTTP/1.1\r\n", false},
	} {
		br := bufio.NewReader(strings.NewReader(tc.in))
		br.Peek(1)
		if got := headBuffered(br); got != tc.want {
			t.Errorf("headBuffered(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// shortTimeouts sets the client connections' timeouts for one test.
func shortTimeouts(t *testing.T, head, idle time.Duration) {
	oldHead, oldIdle := headTimeout, keepIdle
	headTimeout, keepIdle = head, idle
	t.Cleanup(func() { headTimeout, keepIdle = oldHead, oldIdle })
}

// closedWithin reports how long c took to be closed by the router, or
// fails after limit.
func closedWithin(t *testing.T, c net.Conn, br *bufio.Reader, limit time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	c.SetReadDeadline(began.Add(limit))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("connection not closed by the router within %v: %v", limit, err)
	}
	return time.Since(began)
}

// TestClientTimeouts: the read deadlines a request no longer sets each
// time still hold: an unfinished head is cut at the head timeout, also
// on a connection that served a request before, and an idle connection
// at the idle timeout; bodies and tunnels are not cut by either.
func TestClientTimeouts(t *testing.T) {
	shortTimeouts(t, 200*time.Millisecond, 1500*time.Millisecond)
	e := start(t)
	addr, _ := echo(t)
	e.route(t, "slow", addr, "/")
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", e.r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	get := func(c net.Conn, br *bufio.Reader, req string) string {
		t.Helper()
		io.WriteString(c, req)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	const hello = "GET / HTTP/1.1\r\nHost: slow.apps.test\r\n\r\n"

	for _, after := range []bool{false, true} {
		name := "unfinished head"
		if after {
			name += " after a request"
		}
		t.Run(name, func(t *testing.T) {
			c, br := dial()
			if after {
				get(c, br, hello)
			}
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: slow")
			if d := closedWithin(t, c, br, 3*time.Second); d > time.Second {
				t.Errorf("closed after %v, want the head timeout", d)
			}
		})
	}
	t.Run("idle", func(t *testing.T) {
		c, br := dial()
		get(c, br, hello)
		if d := closedWithin(t, c, br, 3*time.Second); d < 1200*time.Millisecond {
			t.Errorf("idle connection closed after %v, before the idle timeout", d)
		}
	})
	t.Run("slow body", func(t *testing.T) {
		c, br := dial()
		get(c, br, hello)
		// The body comes over longer than the idle timeout, after the head.
		io.WriteString(c, "POST /up HTTP/1.1\r\nHost: slow.apps.test\r\nContent-Length: 3\r\n\r\n")
		for _, part := range []string{"a", "b", "c"} {
			time.Sleep(700 * time.Millisecond)
			io.WriteString(c, part)
		}
		if got := get(c, br, ""); !strings.HasPrefix(got, "POST /up len=3 body=abc\n") {
			t.Fatalf("answer to a slow body: %q", got)
		}
	})
	t.Run("quiet tunnel", func(t *testing.T) {
		e.route(t, "ws", echoUpgradeBackend(t), "/")
		c, br := dial()
		io.WriteString(c, "GET /socket HTTP/1.1\r\nHost: ws.apps.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
			t.Fatalf("upgrade: %v %+v", err, resp)
		}
		time.Sleep(2 * time.Second) // longer than the idle timeout
		io.WriteString(c, "still there")
		got := make([]byte, len("still there"))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != "still there" {
			t.Fatalf("echoed %q, %v", got, err)
		}
	})
}
