// Package netx holds what the roles need of TCP beyond the standard
// library.
package netx

import (
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Dialer is a dialer whose connections give up on a peer that stops
// acknowledging what is sent to it for longer than unacked
// (TCP_USER_TIMEOUT): a machine that died or was cut off. Without it, a
// request written to such a peer waits for an answer that never comes,
// and the kernel's retransmissions, further and further apart, may not
// notice the network is back for many seconds. A peer that is slow to
// answer still acknowledges what it receives, so it is not given up on.
func Dialer(timeout, unacked time.Duration) *net.Dialer {
	ms := int(unacked / time.Millisecond)
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, ms)
		})
		if err != nil {
			return err
		}
		return serr
	}}
}
