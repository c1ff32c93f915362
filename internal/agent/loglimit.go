package agent

import (
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// How the flood limit tells of the lines it dropped: once a flood has
// ended (no line dropped for floodQuiet), and every floodReport while it
// lasts.
const (
	floodQuiet  = time.Second
	floodReport = 5 * time.Second
)

// outputs returns the writers of the standard output and error of a's
// process: each line written becomes a log line of the instance, both
// through one flood limit (Config.LogRate). Writing never blocks on the
// limit: a line over it is counted and dropped, so the pipe keeps being
// read however much the process prints.
func (ag *Agent) outputs(a skiff.Assignment) (stdout, stderr io.WriteCloser) {
	publish := func(line string) { ag.st.Log(a.App, skiff.SourceApp, a.Name(), line) }
	if ag.cfg.LogRate <= 0 {
		emit := func(line []byte) { publish(string(line)) }
		return &lineWriter{emit: emit}, &lineWriter{emit: emit}
	}
	f := newFloodLimit(ag.cfg.LogRate, ag.cfg.LogBurst, time.Now, publish, func(n int) {
		ag.platformLog(a, "%s", floodMessage(n, ag.cfg.LogRate))
	})
	return &lineWriter{emit: f.line, done: f.flush}, &lineWriter{emit: f.line, done: f.flush}
}

// floodMessage is the platform line that says n lines were dropped.
func floodMessage(n int, rate float64) string {
	return fmt.Sprintf("%d lines dropped (log rate limit of %s lines/s)", n, strconv.FormatFloat(rate, 'f', -1, 64))
}

// floodLimit passes lines on at rate a second on average and burst at
// once: a token bucket that holds burst tokens and gains rate of them a
// second, each line taking one. It counts the lines it drops and reports
// them (report) once the flood ends or every floodReport while it lasts.
type floodLimit struct {
	rate, burst float64
	now         func() time.Time
	publish     func(string)
	report      func(int)
	quiet, each time.Duration

	mu      sync.Mutex // guards the rest; held while publishing, to keep lines in order
	tokens  float64
	last    time.Time // when tokens was last topped up
	dropped int       // dropped and not reported yet
	since   time.Time // of the first of them
	lastDue time.Time // of the last of them
	timer   *time.Timer
}

func newFloodLimit(rate float64, burst int, now func() time.Time, publish func(string), report func(int)) *floodLimit {
	b := float64(burst)
	if b < 1 {
		b = max(rate*5, 1)
	}
	return &floodLimit{rate: rate, burst: b, now: now, publish: publish, report: report,
		quiet: floodQuiet, each: floodReport, tokens: b, last: now()}
}

// line publishes one line, or drops it over the limit.
func (f *floodLimit) line(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if d := now.Sub(f.last); d > 0 {
		f.tokens = min(f.burst, f.tokens+d.Seconds()*f.rate)
		f.last = now
	}
	if f.tokens >= 1 {
		f.tokens--
		f.publish(string(p))
		return
	}
	if f.dropped == 0 {
		f.since = now
		if f.timer == nil {
			f.timer = time.AfterFunc(f.quiet, f.tick)
		}
	}
	f.dropped++
	f.lastDue = now
	if now.Sub(f.since) >= f.each {
		f.reportLocked()
	}
}

// tick reports the dropped lines once the flood has ended, and keeps
// checking while lines are dropped.
func (f *floodLimit) tick() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.timer = nil
	if f.dropped == 0 {
		return
	}
	now := f.now()
	if now.Sub(f.lastDue) >= f.quiet || now.Sub(f.since) >= f.each {
		f.reportLocked()
		return
	}
	f.timer = time.AfterFunc(f.quiet, f.tick)
}

// flush reports what was dropped and not reported yet: the process's
// output has ended.
func (f *floodLimit) flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dropped > 0 {
		f.reportLocked()
	}
}

func (f *floodLimit) reportLocked() {
	f.report(f.dropped)
	f.dropped = 0
}
