package oneoff

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Stream defaults: how much unacknowledged data may be in flight each
// way, how often an end pings, and how long it waits to hear anything
// before it takes the other end for gone.
const (
	DefaultWindow  = 256 << 10
	DefaultPing    = time.Second
	DefaultTimeout = 15 * time.Second
)

// Errors of a stream.
var (
	ErrClosed   = errors.New("the run's stream is closed")
	ErrPeerGone = errors.New("lost contact with the other end of the run")
	ErrLost     = errors.New("the run's stream lost data on the way")
)

// Options tune a stream; zero values take the defaults.
type Options struct {
	Window  int64
	Ping    time.Duration
	Timeout time.Duration
}

func (o *Options) setDefaults() {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Ping <= 0 {
		o.Ping = DefaultPing
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
}

// Conn is one end of a run's stream over the bus: it publishes frames to
// one subject and receives those of the other end on another.
type Conn struct {
	nc   *nats.Conn
	pub  string
	sub  *nats.Subscription
	opt  Options
	stop chan struct{}

	mu       sync.Mutex
	cond     *sync.Cond
	seq      uint64  // of the last frame sent
	sent     int64   // data bytes sent
	acked    int64   // data bytes the other end has written out
	recvSeq  uint64  // of the last frame received
	consumed int64   // data bytes received and written out
	queue    []frame // received, not yet taken by Recv
	heard    time.Time
	err      error // why the stream ended; frames queued before still come
}

type frame struct {
	kind    byte
	payload []byte
}

// Open starts an end of a stream that publishes on pub and listens on
// listen.
func Open(nc *nats.Conn, pub, listen string, opt Options) (*Conn, error) {
	opt.setDefaults()
	c := &Conn{nc: nc, pub: pub, opt: opt, stop: make(chan struct{}), heard: time.Now()}
	c.cond = sync.NewCond(&c.mu)
	sub, err := nc.Subscribe(listen, c.receive)
	if err != nil {
		return nil, err
	}
	// The window bounds the data in flight; this bounds the rest.
	_ = sub.SetPendingLimits(-1, 4*int(opt.Window)+(1<<20))
	c.sub = sub
	go c.keepalive()
	return c, nil
}

// receive takes each message of the other end, in order.
func (c *Conn) receive(m *nats.Msg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	if len(m.Data) < 9 {
		c.fail(ErrLost)
		return
	}
	kind, seq, payload := m.Data[0], binary.BigEndian.Uint64(m.Data[1:9]), m.Data[9:]
	// The caller's first pings may leave before the agent listens: the
	// first frame heard sets the count.
	if c.recvSeq != 0 && seq != c.recvSeq+1 {
		c.fail(ErrLost)
		return
	}
	c.recvSeq = seq
	c.heard = time.Now()
	switch kind {
	case ping:
	case ack:
		if len(payload) == 8 {
			if n := int64(binary.BigEndian.Uint64(payload)); n > c.acked {
				c.acked = n
				c.cond.Broadcast()
			}
		}
	default:
		c.queue = append(c.queue, frame{kind, payload})
		c.cond.Broadcast()
	}
}

// keepalive pings the other end and watches that it still does too.
func (c *Conn) keepalive() {
	t := time.NewTicker(c.opt.Ping)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		if c.err == nil && time.Since(c.heard) > c.opt.Timeout {
			c.fail(ErrPeerGone)
		}
		if c.err == nil {
			_ = c.publish(ping, nil)
		}
		c.mu.Unlock()
	}
}

// fail ends the stream with err; c.mu is held.
func (c *Conn) fail(err error) {
	if c.err == nil {
		c.err = err
		c.cond.Broadcast()
	}
}

// publish sends one frame; c.mu is held, so frames leave in the order of
// their sequence numbers.
func (c *Conn) publish(kind byte, payload []byte) error {
	b := make([]byte, 9+len(payload))
	b[0] = kind
	c.seq++
	binary.BigEndian.PutUint64(b[1:9], c.seq)
	copy(b[9:], payload)
	return c.nc.Publish(c.pub, b)
}

// Send sends a frame to the other end. Data frames wait for credit: no
// more than the window may be in flight, unwritten, at once. A long
// payload goes in several frames.
func (c *Conn) Send(kind byte, payload []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !isData(kind) {
		if c.err != nil {
			return c.err
		}
		return c.publish(kind, payload)
	}
	for len(payload) > 0 {
		n := min(len(payload), MaxFrame)
		for c.err == nil && c.sent > c.acked && c.sent-c.acked+int64(n) > c.opt.Window {
			c.cond.Wait()
		}
		if c.err != nil {
			return c.err
		}
		if err := c.publish(kind, payload[:n]); err != nil {
			return err
		}
		c.sent += int64(n)
		payload = payload[n:]
	}
	return nil
}

// Recv returns the next frame of the other end. Data frames must be
// acknowledged with Consumed once written out. After the stream ends,
// the frames that came before its end are still returned, then the
// reason it ended.
func (c *Conn) Recv() (kind byte, payload []byte, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) == 0 && c.err == nil {
		c.cond.Wait()
	}
	if len(c.queue) == 0 {
		return 0, nil, c.err
	}
	f := c.queue[0]
	c.queue[0] = frame{}
	c.queue = c.queue[1:]
	return f.kind, f.payload, nil
}

// Consumed tells the other end that n more bytes of its data were
// written out, giving it credit to send more.
func (c *Conn) Consumed(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || n <= 0 {
		return
	}
	c.consumed += int64(n)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(c.consumed))
	_ = c.publish(ack, b[:])
}

// Err is why the stream ended, or nil while it lasts.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends this end of the stream: Send and Recv return ErrClosed (Recv
// once the frames already received are taken), and nothing more is
// received. Buffered frames are flushed to the bus first.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.err == nil {
		c.fail(ErrClosed)
	}
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.mu.Unlock()
	_ = c.nc.Flush()
	return c.sub.Unsubscribe()
}

// Output writes the process's output to stdout and stderr as it comes,
// acknowledging each piece once written, until the process ends, and
// returns how it ended. A terminal's output all goes to stdout.
func (c *Conn) Output(stdout, stderr io.Writer) (Status, error) {
	for {
		kind, p, err := c.Recv()
		if err != nil {
			return Status{}, err
		}
		switch kind {
		case Stdout, Stderr:
			w := stdout
			if kind == Stderr {
				w = stderr
			}
			if _, err := w.Write(p); err != nil {
				return Status{}, err
			}
			c.Consumed(len(p))
		case Exit:
			var st Status
			if err := json.Unmarshal(p, &st); err != nil {
				return Status{}, fmt.Errorf("decode the run's exit status: %w", err)
			}
			return st, nil
		}
	}
}
