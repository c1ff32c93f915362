package router

import (
	"bufio"
	"context"
	"errors"
	"net"

	"sync"
	"syscall"
	"time"

	"github.com/skiff-paas/skiff/internal/netx"
)

// Connections to backends are kept open between requests (keep-alive),
// per backend, and reused newest first, so that a busy backend's
// connections stay warm and the rest time out.
const (
	maxIdlePerBackend = 256
	idleTimeout       = 60 * time.Second // an idle backend connection is closed after it
	idleCheck         = 15 * time.Second // how often idle connections are looked at
	staleAfter        = time.Second      // an idle connection older than this is checked before reuse
	dialTimeout       = 2 * time.Second  // a backend that does not answer a SYN in time is skipped like one that refused
	backendUnacked    = 1500 * time.Millisecond
	bufSize           = 16 << 10
)

// A pool's life ends in two steps. When the last backend at its address
// is retired (closeAll), its idle connections close and it keeps none
// from then on; the requests under way on its busy connections go on,
// for at most the drain timeout. Then (closeBusy) their connections are
// closed, and those of the HTTP/2 side's requests cancelled: a client
// that had no answer yet gets a 502, one being answered sees its
// connection (or stream) end. A drained pool hands out no connection.
//
// A pool is tied to one run of backends at an address, not to the
// address: once closed it is forgotten, and a backend that comes later
// at the same address gets a new pool, which the old one's timer does
// not touch.

// errRetired is the answer of a drained pool: its backend was retired
// and its drain timeout has passed.
var errRetired = errors.New("backend retired")

// backendConn is a connection to a backend.
type backendConn struct {
	net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	// busy is the connection's index in its pool's busy list while a
	// request has it, else -1. Guarded by the pool's mu.
	busy int
}

// connPool holds a backend's connections: the idle ones, for reuse, and
// the busy ones (handed out to requests), so that a retired backend's
// can be closed when its drain timeout ends.
type connPool struct {
	// drain is how long busy connections may stay open once the pool is
	// closed (0: as long as their requests take). Set when made.
	drain time.Duration

	mu      sync.Mutex // guards the fields below, and backendConn.busy
	idle    []*backendConn
	busy    []*backendConn
	streams map[*h2Stream]struct{} // HTTP/2 side requests under way (h2.go)
	closed  bool                   // the backend is retired: connections are not kept
	drained bool                   // the drain ended: none is handed out
	late    bool                   // it ended at the drain timeout, not at the node's death
}

// h2Stream is a request of the HTTP/2 side under way on a pool's
// address; cancel ends its backend request.
type h2Stream struct{ cancel context.CancelFunc }

// dialer gives up on a backend whose machine stops acknowledging what is
// sent to it (dead, or cut off) after backendUnacked: a request written
// to it and not answered is then sent again elsewhere if it may be.
var dialer = netx.Dialer(dialTimeout, backendUnacked)

// conn returns an idle connection to b, or a new one; reused says which.
// The connection is busy until given back with put or drop.
func (b *backend) conn() (c *backendConn, reused bool, err error) {
	for {
		c := b.pool.get()
		if c == nil {
			break
		}
		if time.Since(c.idleAt) < staleAfter || alive(c) {
			return c, true, nil
		}
		b.pool.drop(c)
	}
	nc, err := dialer.Dial("tcp", b.addr)
	if err != nil {
		return nil, false, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	nc = netx.Raw(nc)
	c = &backendConn{Conn: nc, br: bufio.NewReaderSize(nc, bufSize), bw: bufio.NewWriterSize(nc, bufSize), busy: -1}
	if !b.pool.add(c) {
		c.Close()
		return nil, false, errRetired
	}
	return c, false, nil
}

// alive checks, without blocking, that an idle connection was not closed
// by the backend meanwhile (nor sent anything unasked).
//
// It peeks at the socket itself (MSG_PEEK|MSG_DONTWAIT): a read with a
// deadline already past would not do, as Go answers it with the timeout
// before asking the kernel anything.
func alive(c *backendConn) bool {
	if c.br.Buffered() > 0 {
		return false
	}
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	live := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Nothing to read is the one good answer: data unasked for, the
		// end of the stream (n == 0) or an error all mean not reusable.
		live = n <= 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
		return true // never wait
	})
	return err == nil && live
}

// get hands out the newest idle connection, or nil.
func (p *connPool) get() *backendConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	c := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	p.markBusy(c)
	return c
}

// add counts a new connection as busy; it reports false, and keeps
// nothing, once the pool is drained.
func (p *connPool) add(c *backendConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drained {
		return false
	}
	p.markBusy(c)
	return true
}

// put gives back a busy connection, and keeps it for reuse or closes it.
func (p *connPool) put(c *backendConn) {
	c.idleAt = time.Now()
	p.mu.Lock()
	p.unmarkBusy(c)
	if p.closed || len(p.idle) >= maxIdlePerBackend {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// drop gives back a busy connection that is not to be reused, and closes
// it.
func (p *connPool) drop(c *backendConn) {
	p.mu.Lock()
	p.unmarkBusy(c)
	p.mu.Unlock()
	c.Close()
}

// markBusy and unmarkBusy add c to the busy list, and take it out in
// constant time (the last one takes its place). p.mu is held.
func (p *connPool) markBusy(c *backendConn) {
	c.busy = len(p.busy)
	p.busy = append(p.busy, c)
}

func (p *connPool) unmarkBusy(c *backendConn) {
	i := c.busy
	if i < 0 {
		return // closed by the drain timeout already
	}
	last := len(p.busy) - 1
	if i != last {
		p.busy[i] = p.busy[last]
		p.busy[i].busy = i
	}
	p.busy[last] = nil
	p.busy = p.busy[:last]
	c.busy = -1
}

// closeIdle closes the connections idle for longer than idleTimeout.
func (p *connPool) closeIdle(now time.Time) {
	p.mu.Lock()
	keep := p.idle[:0]
	var old []*backendConn
	for _, c := range p.idle {
		if now.Sub(c.idleAt) > idleTimeout {
			old = append(old, c)
		} else {
			keep = append(keep, c)
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	p.mu.Unlock()
	for _, c := range old {
		c.Close()
	}
}

// closeAll closes every idle connection and keeps none from now on; the
// busy ones are closed after the drain timeout, if the pool has one.
func (p *connPool) closeAll() {
	p.mu.Lock()
	idle := p.idle
	first := !p.closed
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
	if first && p.drain > 0 {
		time.AfterFunc(p.drain, func() {
			p.mu.Lock()
			p.late = !p.drained
			p.mu.Unlock()
			p.closeBusy()
		})
	}
}

// cutLate reports whether the pool's busy connections were cut at the
// drain timeout: a request cut then took too long, and is not sent
// again elsewhere, unlike one cut because its backend's node died.
func (p *connPool) cutLate() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.late
}

// closeBusy closes the connections still busy and cancels the HTTP/2
// side's requests; the pool hands out nothing from then on.
func (p *connPool) closeBusy() {
	p.mu.Lock()
	busy, streams := p.busy, p.streams
	p.busy, p.streams, p.drained = nil, nil, true
	for _, c := range busy {
		c.busy = -1
	}
	p.mu.Unlock()
	for _, c := range busy {
		c.Close()
	}
	for s := range streams {
		s.cancel()
	}
}

// track counts an HTTP/2 side request as under way on the pool's
// address; it reports false once the pool is drained.
func (p *connPool) track(s *h2Stream) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drained {
		return false
	}
	if p.streams == nil {
		p.streams = map[*h2Stream]struct{}{}
	}
	p.streams[s] = struct{}{}
	return true
}

// untrack forgets an HTTP/2 side request that ended.
func (p *connPool) untrack(s *h2Stream) {
	p.mu.Lock()
	delete(p.streams, s)
	p.mu.Unlock()
}
