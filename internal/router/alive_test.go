package router

import (
	"bufio"
	"net"
	"testing"
)

// TestAlive: an idle backend connection is reusable while the backend
// keeps it open and quiet, and not once the backend closed it or sent
// something nobody asked for.
func TestAlive(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() (*backendConn, net.Conn) {
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		server := <-accepted
		t.Cleanup(func() { server.Close() })
		return &backendConn{Conn: nc, br: bufio.NewReader(nc), bw: bufio.NewWriter(nc), busy: -1}, server
	}
	quiet, _ := dial()
	if !alive(quiet) {
		t.Error("an open, quiet connection is not alive")
	}
	closed, server := dial()
	server.Close()
	eventually(t, func() bool { return !alive(closed) }) // once the FIN has come
	chatty, server := dial()
	server.Write([]byte("HTTP/1.1 408 Request Timeout\r\n\r\n"))
	eventually(t, func() bool { return !alive(chatty) }) // once the bytes have come
	// Peeking takes nothing: what arrived is still there to read.
	if n := chatty.br.Buffered(); n != 0 {
		t.Errorf("alive read %d bytes into the buffer", n)
	}
}
