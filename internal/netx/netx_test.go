package netx

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestDialerSetsTheUserTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := Dialer(time.Second, 1500*time.Millisecond).Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, _ := c.(*net.TCPConn).SyscallConn()
	var got int
	raw.Control(func(fd uintptr) { got, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT) })
	if err != nil || got != 1500 {
		t.Fatalf("TCP_USER_TIMEOUT = %d, %v; want 1500", got, err)
	}
}
