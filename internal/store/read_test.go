package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestReadTriesAgain: a read nobody answers is tried again, each try
// short, until it is answered; other errors end it at once, and so does
// the caller's deadline.
func TestReadTriesAgain(t *testing.T) {
	tries := 0
	v, err := read(context.Background(), 50*time.Millisecond, func(ctx context.Context) (int, error) {
		if tries++; tries < 3 {
			<-ctx.Done() // a stream without a leader: no answer
			return 0, ctx.Err()
		}
		return 7, nil
	})
	if err != nil || v != 7 || tries != 3 {
		t.Fatalf("read = %d, %v after %d tries; want 7 on the third", v, err, tries)
	}

	tries = 0
	bad := errors.New("decode failed")
	if _, err := read(context.Background(), 50*time.Millisecond, func(context.Context) (int, error) { tries++; return 0, bad }); err != bad || tries != 1 {
		t.Fatalf("read = %v after %d tries; want the error at once", err, tries)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start, tries := time.Now(), 0
	_, err = read(ctx, 50*time.Millisecond, func(context.Context) (int, error) { tries++; return 0, nats.ErrNoResponders })
	if !errors.Is(err, nats.ErrNoResponders) || time.Since(start) > time.Second {
		t.Fatalf("read = %v after %s; want no responders by the caller's deadline", err, time.Since(start))
	}
	if tries > 10 {
		t.Fatalf("%d tries in 500 ms: refusals must not be tried again at once", tries)
	}
}
