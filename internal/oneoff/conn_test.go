package oneoff

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/bus/bustest"
)

// pair opens both ends of a stream.
func pair(t *testing.T, opt Options) (caller, agent *Conn) {
	t.Helper()
	nc := bustest.Start(t)
	var err error
	if caller, err = Open(nc, InSubject("t"), OutSubject("t"), opt); err != nil {
		t.Fatal(err)
	}
	if agent, err = Open(nc, OutSubject("t"), InSubject("t"), opt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caller.Close(); agent.Close() })
	return caller, agent
}

// TestDataArrivesWholeAndInOrder: a slow reader holds the writer back
// to the window, and gets every byte in order.
func TestDataArrivesWholeAndInOrder(t *testing.T) {
	caller, agent := pair(t, Options{Window: 64 << 10})
	data := make([]byte, 3<<20)
	rand.Read(data)
	sent := make(chan error, 1)
	go func() {
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 10000)
			if err := agent.Send(Stdout, rest[:n]); err != nil {
				sent <- err
				return
			}
			agent.mu.Lock()
			inFlight := agent.sent - agent.acked
			agent.mu.Unlock()
			if inFlight > 64<<10+MaxFrame {
				sent <- errors.New("more than the window in flight")
				return
			}
			rest = rest[n:]
		}
		sent <- agent.Send(Exit, []byte(`{"code":7,"reason":"exit status 7"}`))
	}()
	var got bytes.Buffer
	st, err := caller.Output(slowWriter{&got}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) || st.Code != 7 {
		t.Fatalf("got %d bytes (equal: %v), status %+v", got.Len(), bytes.Equal(got.Bytes(), data), st)
	}
}

// slowWriter takes a little time over each write.
type slowWriter struct{ b *bytes.Buffer }

func (w slowWriter) Write(p []byte) (int, error) {
	time.Sleep(50 * time.Microsecond)
	return w.b.Write(p)
}

// TestSilenceEndsTheStream: an end that stops pinging is taken for gone.
func TestSilenceEndsTheStream(t *testing.T) {
	caller, agent := pair(t, Options{Ping: 20 * time.Millisecond, Timeout: 200 * time.Millisecond})
	caller.Close()
	start := time.Now()
	if _, _, err := agent.Recv(); !errors.Is(err, ErrPeerGone) {
		t.Fatalf("Recv: %v, want ErrPeerGone", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s to notice", d)
	}
}

// TestLossIsAnError: a frame that skips a sequence number ends the
// stream rather than corrupt it.
func TestLossIsAnError(t *testing.T) {
	caller, agent := pair(t, Options{})
	caller.Send(Stdin, []byte("a"))
	if kind, p, err := agent.Recv(); err != nil || kind != Stdin || string(p) != "a" {
		t.Fatal(kind, p, err)
	}
	b := make([]byte, 10)
	b[0] = Stdin
	binary.BigEndian.PutUint64(b[1:9], 99)
	caller.nc.Publish(caller.pub, b)
	if _, _, err := agent.Recv(); !errors.Is(err, ErrLost) {
		t.Fatalf("Recv: %v, want ErrLost", err)
	}
}

func TestFrames(t *testing.T) {
	var b bytes.Buffer
	WriteFrame(&b, Resize, Size{Cols: 120, Rows: 50}.Encode())
	WriteFrame(&b, Stdin, nil)
	kind, p, err := ReadFrame(&b)
	if s, _ := DecodeSize(p); err != nil || kind != Resize || s != (Size{120, 50}) {
		t.Fatal(kind, p, err)
	}
	if kind, p, err := ReadFrame(&b); err != nil || kind != Stdin || len(p) != 0 {
		t.Fatal(kind, p, err)
	}
	if err := WriteFrame(&b, Stdout, make([]byte, MaxFrame+1)); err == nil {
		t.Error("an oversized frame was written")
	}
}
