// Package testkit holds small helpers that tests of several packages
// share. Only tests import it.
package testkit

import (
	"bytes"
	"sync"
)

// SyncBuffer is a bytes.Buffer that one goroutine may write while
// another reads it, such as a server's output read by its test.
type SyncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// RandomText is n bytes of lowercase letters that do not compress, so
// that an upload or image made of them stays large. It is the same for
// the same n.
func RandomText(n int) string {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		// xorshift32
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = 'a' + byte(x%26)
	}
	return string(b)
}
