package backoff

import (
	"testing"
	"time"
)

func TestDoubling(t *testing.T) {
	for _, c := range []struct {
		n    int
		want time.Duration
	}{
		{-1, time.Second}, {0, time.Second}, {1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second},
		{5, 16 * time.Second}, {6, 30 * time.Second}, {40, 30 * time.Second}, {64, 30 * time.Second}, {1000, 30 * time.Second},
	} {
		if got := Doubling(c.n, time.Second, 30*time.Second); got != c.want {
			t.Errorf("Doubling(%d) = %s, want %s", c.n, got, c.want)
		}
	}
}
