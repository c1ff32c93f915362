// Package oneoff carries one-off processes (skiff run): the request that
// starts one on an agent, and the terminal stream between the process and
// whoever runs it, over the bus.
//
// A caller (the api or ssh role) subscribes to the run's output subject,
// then asks on skiff.SubjectRun; one agent, any of those listening in the
// queue group, takes the request, starts the process in the app's latest
// release and answers with its name. From then on the two ends talk over
// two subjects, skiff.run.ID.in (to the process) and skiff.run.ID.out
// (from it), in frames: a kind byte, a sequence number and a payload.
//
// Core NATS keeps the order of one publisher's messages but drops them
// when a subscriber falls behind, so each end gives the other credit: it
// sends no more than Window bytes of data the other has not yet written
// out, and the receiver acknowledges what it has written. Sequence numbers
// turn any loss that still happens (a reconnect) into an error rather
// than a corrupted terminal. Both ends ping each other every second; an
// end that hears nothing for Timeout takes the other for gone, and the
// agent then kills the process: a run never outlives its caller.
//
// The same frames, with a length instead of a sequence number, travel
// between the CLI and the api role over the upgraded HTTP connection
// (WriteFrame, ReadFrame).
package oneoff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame kinds.
const (
	Stdin  byte = 'i' // data for the process's standard input
	Stdout byte = 'o' // data from the process's standard output (or terminal)
	Stderr byte = 'e' // data from its standard error
	EOF    byte = 'c' // the caller's input ended
	Resize byte = 'r' // the caller's terminal size: Size
	Signal byte = 's' // a signal for the process, by name: "INT"
	Exit   byte = 'x' // the process ended: Status as JSON; the last frame
	Hangup byte = 'h' // the caller went away

	ack  byte = 'a' // bus only: bytes of data written out so far
	ping byte = 'p' // bus only: still here
)

// isData reports whether frames of kind count against the window.
func isData(kind byte) bool { return kind == Stdin || kind == Stdout || kind == Stderr }

// MaxFrame bounds a frame's payload.
const MaxFrame = 64 << 10

// Size is a terminal's size in characters.
type Size struct {
	Cols, Rows uint16
}

// Encode is the payload of a Resize frame.
func (s Size) Encode() []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint16(b, s.Cols)
	binary.BigEndian.PutUint16(b[2:], s.Rows)
	return b
}

// DecodeSize reads a Resize frame's payload.
func DecodeSize(p []byte) (Size, error) {
	if len(p) != 4 {
		return Size{}, errors.New("bad terminal size")
	}
	return Size{Cols: binary.BigEndian.Uint16(p), Rows: binary.BigEndian.Uint16(p[2:])}, nil
}

// Status is how a one-off process ended.
type Status struct {
	// Code is the exit status; 128+N when signal N killed it, as shells
	// report it.
	Code int `json:"code"`
	// Reason describes the end: "exit status 1", "out of memory: …".
	Reason string `json:"reason"`
	// Error is set when the process could not run or its stream broke.
	Error string `json:"error,omitempty"`
}

// WriteFrame writes one frame to a stream connection: its kind, the
// payload's length in four bytes, the payload.
func WriteFrame(w io.Writer, kind byte, payload []byte) error {
	if len(payload) > MaxFrame {
		return fmt.Errorf("frame of %d bytes is over the limit of %d", len(payload), MaxFrame)
	}
	b := make([]byte, 5+len(payload))
	b[0] = kind
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	copy(b[5:], payload)
	_, err := w.Write(b)
	return err
}

// ReadFrame reads one frame written by WriteFrame.
func ReadFrame(r io.Reader) (kind byte, payload []byte, err error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > MaxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes is over the limit of %d", n, MaxFrame)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	return h[0], payload, nil
}
