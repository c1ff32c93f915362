package cron

import (
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/schedule"
)

func TestShortMinutes(t *testing.T) {
	r, err := New(Config{Node: "n", Minute: 2 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	real := time.Date(2025, 3, 14, 10, 7, 31, 0, time.UTC)
	v := r.toSchedule(real)
	if back := r.fromSchedule(v); !back.Equal(real) {
		t.Errorf("fromSchedule(toSchedule(%s)) = %s", real, back)
	}
	// Every schedule minute lasts 2 s: "* * * * *" is due every 2 s.
	s, _ := schedule.Parse("* * * * *")
	first := r.fromSchedule(s.Next(v))
	second := r.fromSchedule(s.Next(s.Next(v)))
	if d := second.Sub(first); d != 2*time.Second || first.Before(real) || first.Sub(real) > 2*time.Second {
		t.Errorf("slots at %s and %s after %s; want 2 s apart", first, second, real)
	}
	if got := r.scheduleSpan(30 * time.Second); got != 15*time.Minute {
		t.Errorf("30 s lasts %s of the schedules, want 15m", got)
	}
	for _, m := range []time.Duration{time.Millisecond, 2 * time.Minute} {
		if _, err := New(Config{Node: "n", Minute: m}, nil); err == nil {
			t.Errorf("a minute of %s was taken", m)
		}
	}
}
