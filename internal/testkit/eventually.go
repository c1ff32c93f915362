package testkit

import (
	"testing"
	"time"
)

// Eventually polls cond every 20 ms until it holds, and fails the test
// if it does not within d; what says what was waited for.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
