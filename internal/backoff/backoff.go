// Package backoff spaces out the retries of something that keeps
// failing: the supervisors of apps and add-on servers, and the log
// drains, wait longer after each failure in a row.
package backoff

import "time"

// Doubling is how long to wait after the n-th failure in a row (from 1):
// base after the first, doubled for each one after, at most max.
func Doubling(n int, base, max time.Duration) time.Duration {
	if n <= 1 {
		return base
	}
	shift := min(n-1, 62)
	d := base << shift
	if d>>shift != base || d > max { // overflowed, or past max
		return max
	}
	return d
}
