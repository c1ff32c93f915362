package netx

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// rawPair is a TCP connection over loopback, the client's side Raw.
func rawPair(t *testing.T) (raw, peer net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	raw = Raw(c)
	if _, ok := raw.(*tcpConn); !ok {
		t.Fatalf("Raw gave %T", raw)
	}
	t.Cleanup(func() { raw.Close(); p.Close() })
	return raw, p
}

func TestRawReadWrite(t *testing.T) {
	raw, peer := rawPair(t)
	// More than the sockets' buffers hold: the writer waits for room.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	done := make(chan error, 1)
	go func() {
		_, err := raw.Write(big)
		raw.(*tcpConn).CloseWrite()
		done <- err
	}()
	got, err := io.ReadAll(peer)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("peer read %d bytes, %v; want %d", len(got), err, len(big))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The other way, then the end of the stream.
	go func() {
		peer.Write([]byte("hello"))
		peer.Close()
	}()
	got, err = io.ReadAll(raw)
	if err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v", got, err)
	}
	if n, err := raw.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("after the end: %d, %v; want io.EOF", n, err)
	}
}

// A read waits in the netpoller: deadlines and Close end it.
func TestRawReadWaits(t *testing.T) {
	raw, _ := rawPair(t)
	raw.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := raw.Read(make([]byte, 8))
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) < 40*time.Millisecond {
		t.Fatalf("read with a deadline: %v after %v", err, time.Since(start))
	}
	raw.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := raw.Read(make([]byte, 8))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	raw.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed connection: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting read")
	}
}

func TestRawOther(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Raw(a) != a {
		t.Fatal("Raw wrapped a connection that is not TCP")
	}
}
