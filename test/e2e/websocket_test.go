package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestWebSocket deploys a Node.js app that speaks WebSocket (RFC 6455,
// by hand on Node's built-in modules) and talks to it through the router:
// echoes of small and large messages, ping and pong, messages the app
// sends on its own, two sockets at once, plain HTTP beside them, and the
// closing handshake.
func TestWebSocket(t *testing.T) {
	s := startServer(t)
	s.ok("apps", "create", "wsapp")
	start := time.Now()
	if out := s.ok("deploy", app(t, "wsapp", nil), "-a", "wsapp"); !strings.Contains(out, "Node.js app detected") {
		t.Fatalf("deploy output:\n%s", out)
	}
	s.waitFor(host("wsapp"), "hello from wsapp release=v1")
	t.Logf("deploy to first 200: %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()

	// The first socket uses the sample key of RFC 6455 (section 1.3), so
	// the app's answer is checked against the RFC's and not only against
	// this test's own reading of it.
	a, resp := dialWebSocket(t, s.rtrAddr, host("wsapp"), "/chat", "dGhlIHNhbXBsZSBub25jZQ==")
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("Sec-WebSocket-Accept for the RFC's sample key = %q", got)
	}
	a.expect(t, wsText, "welcome release=v1 host=wsapp.skiff.test path=/chat")
	// 125 and 126 bytes are either side of the 16-bit length; 70000 needs
	// the 64-bit one.
	for _, msg := range []string{"hello", "", "ünïcödé ✓", strings.Repeat("a", 125), strings.Repeat("b", 126), strings.Repeat("c", 70000)} {
		a.send(t, wsText, msg)
		a.expect(t, wsText, msg)
	}
	big := make([]byte, 256<<10)
	rand.Read(big)
	a.send(t, wsBinary, string(big))
	a.expect(t, wsBinary, string(big))
	a.send(t, wsPing, "are you there")
	a.expect(t, wsPong, "are you there")

	// Messages the app sends of its own accord, while the client only
	// reads. Few and small: a router that held them back to fill a buffer
	// would never pass them on.
	tickStart := time.Now()
	a.send(t, wsText, "tick 5")
	for i := 1; i <= 5; i++ {
		a.expect(t, wsText, fmt.Sprintf("tick %d", i))
	}
	t.Logf("5 ticks 100 ms apart arrived in %s", time.Since(tickStart).Round(time.Millisecond))
	a.send(t, wsText, "after the ticks")
	a.expect(t, wsText, "after the ticks")

	// A second socket at the same time: each gets its own messages.
	b, _ := dialWebSocket(t, s.rtrAddr, host("wsapp"), "/other?room=2", wsKey())
	b.expect(t, wsText, "welcome release=v1 host=wsapp.skiff.test path=/other?room=2")
	a.send(t, wsText, "from a")
	b.send(t, wsText, "from b")
	b.expect(t, wsText, "from b")
	a.expect(t, wsText, "from a")
	a.send(t, wsText, "tick 3")
	b.send(t, wsText, "tick 3")
	for _, c := range []*wsConn{b, a} {
		for i := 1; i <= 3; i++ {
			c.expect(t, wsText, fmt.Sprintf("tick %d", i))
		}
	}

	// Plain HTTP on a connection of its own, while both sockets are open.
	fresh := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest("GET", "http://"+s.rtrAddr+"/", nil)
	req.Host = host("wsapp")
	r, err := fresh.Do(req)
	if err != nil {
		t.Fatalf("plain HTTP beside the sockets: %v", err)
	}
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil || r.StatusCode != 200 || string(body) != "hello from wsapp release=v1\n" {
		t.Fatalf("plain HTTP beside the sockets: %d %q %v", r.StatusCode, body, err)
	}

	// The closing handshake: the app answers with the same code, then
	// ends the connection, and the router passes the end on.
	for i, c := range []*wsConn{a, b} {
		c.send(t, wsClose, "\x03\xe8bye") // 1000, normal closure
		c.expect(t, wsClose, "\x03\xe8")
		c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.br.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("socket %d after the close frames: read %d bytes, %v; want EOF", i+1, n, err)
		}
		c.c.Close()
	}
	t.Logf("websocket checks: %s", time.Since(start).Round(time.Millisecond))
}

// Opcodes of RFC 6455, section 5.2.
const (
	wsText   = 1
	wsBinary = 2
	wsClose  = 8
	wsPing   = 9
	wsPong   = 10
)

// wsConn is the client end of a WebSocket: just enough of RFC 6455 to
// send masked frames and read the server's unfragmented ones.
type wsConn struct {
	c  net.Conn
	br *bufio.Reader
}

func wsKey() string {
	var k [16]byte
	rand.Read(k[:])
	return base64.StdEncoding.EncodeToString(k[:])
}

// dialWebSocket connects to the router at addr and opens a WebSocket to
// path at host, with key as Sec-WebSocket-Key. It checks the handshake's
// answer and closes the connection at the end of the test.
func dialWebSocket(t *testing.T, addr, host, path, key string) (*wsConn, *http.Response) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, host, key)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatalf("websocket handshake for %s%s: %v", host, path, err)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	accept := base64.StdEncoding.EncodeToString(sum[:])
	if resp.StatusCode != 101 || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") ||
		!strings.EqualFold(resp.Header.Get("Connection"), "upgrade") || resp.Header.Get("Sec-WebSocket-Accept") != accept {
		t.Fatalf("websocket handshake for %s%s: %s %v; want 101 with Upgrade: websocket and Sec-WebSocket-Accept: %s",
			host, path, resp.Status, resp.Header, accept)
	}
	return &wsConn{c: c, br: br}, resp
}

// send writes one masked frame, as clients must.
func (w *wsConn) send(t *testing.T, op byte, payload string) {
	t.Helper()
	frame := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		frame = append(frame, 0x80|byte(n))
	case n < 1<<16:
		frame = binary.BigEndian.AppendUint16(append(frame, 0x80|126), uint16(n))
	default:
		frame = binary.BigEndian.AppendUint64(append(frame, 0x80|127), uint64(n))
	}
	var mask [4]byte
	rand.Read(mask[:])
	frame = append(frame, mask[:]...)
	for i := 0; i < len(payload); i++ {
		frame = append(frame, payload[i]^mask[i%4])
	}
	w.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := w.c.Write(frame); err != nil {
		t.Fatalf("send a frame of %d bytes: %v", len(payload), err)
	}
}

// expect reads one frame and fails the test unless it is a whole message
// with the opcode and payload wanted.
func (w *wsConn) expect(t *testing.T, op byte, want string) {
	t.Helper()
	gotOp, got, err := w.read()
	if err != nil {
		t.Fatalf("waiting for %s: %v", abbrev(want), err)
	}
	if gotOp != op || !bytes.Equal(got, []byte(want)) {
		t.Fatalf("got frame opcode %d %s; want opcode %d %s", gotOp, abbrev(string(got)), op, abbrev(want))
	}
}

func (w *wsConn) read() (op byte, payload []byte, err error) {
	w.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(w.br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0x80 == 0 || h[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("frame header %x: the app sends whole messages, unmasked", h)
	}
	var ext [8]byte
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(w.br, ext[:2]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:2]))
	case 127:
		if _, err := io.ReadFull(w.br, ext[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > 1<<20 {
		return 0, nil, errors.New("frame longer than 1 MiB")
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(w.br, payload); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0f, payload, nil
}

// abbrev shows a payload in a failure message, or its length when long.
func abbrev(p string) string {
	if len(p) > 64 {
		return fmt.Sprintf("(%d bytes)", len(p))
	}
	return fmt.Sprintf("%q", p)
}
