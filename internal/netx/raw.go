package netx

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// tcpConn is a TCP connection whose reads and writes are made as raw
// system calls, outside the Go scheduler's accounting (see Raw).
//
// Go's own reads and writes tell the scheduler that the goroutine is
// entering a system call, so that its processor may be handed to another
// thread should the call block. A socket here never blocks (it is
// non-blocking, and a read or write that would block returns EAGAIN and
// waits in the netpoller as usual), but a write to a loopback socket does
// the receiver's TCP work too and can take tens of microseconds: the
// scheduler's monitor then finds the processor "in a system call", hands
// it to another thread, and wakes every 20 µs to look again. On a busy
// two-core router that was a context switch every few requests and about
// a tenth of its CPU time, for calls that never block.
//
// The functions given to the raw connection are made once per connection
// (a closure per call would be an allocation per read and per write), so
// the buffer and the result of the call under way are kept in the
// connection, each direction's guarded by a mutex of its own: a net.Conn
// may be used by several goroutines at once.
type tcpConn struct {
	*net.TCPConn
	rc syscall.RawConn

	rmu    sync.Mutex
	rbuf   []byte
	rn     int
	rerrno syscall.Errno
	readFn func(fd uintptr) bool

	wmu     sync.Mutex
	wbuf    []byte
	wn      int
	werrno  syscall.Errno
	writeFn func(fd uintptr) bool
}

// Raw returns c with its reads and writes made as raw system calls, when
// it is a TCP connection; other connections are returned as they are.
// The connection keeps every method of *net.TCPConn but these two.
func Raw(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	fc := &tcpConn{TCPConn: tc, rc: rc}
	fc.readFn, fc.writeFn = fc.read, fc.write
	return fc
}

func (c *tcpConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	c.rbuf = p
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerrno
	c.rbuf = nil
	c.rmu.Unlock()
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", errno)}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// read is readFn: one read(2) into rbuf; false (wait until readable,
// then call again) when there is nothing to read yet.
func (c *tcpConn) read(fd uintptr) bool {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
		switch e {
		case 0:
			c.rn, c.rerrno = int(r), 0
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.rn, c.rerrno = 0, e
		return true
	}
}

func (c *tcpConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	c.wbuf, c.wn, c.werrno = p, 0, 0
	err := c.rc.Write(c.writeFn)
	n, errno := c.wn, c.werrno
	c.wbuf = nil
	c.wmu.Unlock()
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("write", errno)}
	}
	return n, nil
}

// write is writeFn: write(2) until all of wbuf is written; false (wait
// until writable, then call again) when the socket's buffer is full.
func (c *tcpConn) write(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&c.wbuf[c.wn])), uintptr(len(c.wbuf)-c.wn))
		switch e {
		case 0:
			c.wn += int(r)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werrno = e
			return true
		}
	}
	return true
}
