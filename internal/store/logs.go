package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Log publishes one log line of app. It never waits for the bus: a line
// that cannot be sent is dropped, since an app must not stall on its logs.
func (s *Store) Log(app, source, process, line string) {
	if err := s.NC.Publish(skiff.LogSubject(app, source, process), []byte(line)); err != nil {
		s.log.Debug("log line dropped", "app", app, "err", err)
	}
}

// Emit records ev in the EVENTS stream and shows its message in the app's
// logs as a platform line from ev.Component.
func (s *Store) Emit(ev skiff.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	if ev.Component == "" {
		ev.Component = "api"
	}
	data, err := json.Marshal(ev)
	if err == nil {
		err = s.NC.Publish(skiff.EventSubject(ev.App, ev.Type), data)
	}
	if err != nil {
		s.log.Warn("event dropped", "app", ev.App, "type", ev.Type, "err", err)
	}
	if ev.App != "" { // the platform's own events have no app's logs
		s.Log(ev.App, skiff.SourcePlatform, ev.Component, ev.Message)
	}
}

// LogQuery selects log lines of one app.
type LogQuery struct {
	App string
	// Tail is how many of the newest lines to show first.
	Tail int
	// Follow keeps delivering new lines until the context ends.
	Follow bool
	// Process keeps only lines of one instance ("web.1"), or of every
	// instance of a type ("web"); platform lines about them are kept too.
	Process string
	// Source keeps only lines from app, router or platform.
	Source string
	// Since, when set, starts the history at the first line of that
	// time: the last Tail lines from then on are shown.
	Since time.Time
}

// LogDefaults is the retention of an app that has none of its own.
func (s *Store) LogDefaults() skiff.LogRetention {
	return skiff.LogRetention{MaxAge: s.opt.LogMaxAge, MaxSize: s.opt.LogAppMaxBytes}
}

func (q LogQuery) filters() []string {
	source := "*"
	if q.Source != "" {
		source = q.Source
	}
	base := "logs." + q.App + "." + source + "."
	switch {
	case q.Process == "":
		return []string{base + ">"}
	case strings.Contains(q.Process, "."):
		return []string{base + q.Process}
	default:
		return []string{base + q.Process, base + q.Process + ".*"}
	}
}

// ReadLogs calls fn with the last q.Tail lines of q.App (of those since
// q.Since, when set), oldest first, and then, if q.Follow, with each new
// line until ctx ends.
//
// To find where the tail starts without reading the whole history, it
// counts the matching lines in a window at the end of the stream and widens
// the window until it holds enough of them; from a time, JetStream finds
// the first line of that time itself.
func (s *Store) ReadLogs(ctx context.Context, q LogQuery, fn func(skiff.LogLine) error) error {
	if q.Tail <= 0 && !q.Follow {
		return nil
	}
	stream, err := s.JS.Stream(ctx, skiff.StreamLogs)
	if err != nil {
		return fmt.Errorf("read logs: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("read logs: %w", err)
	}
	first, last := info.State.FirstSeq, info.State.LastSeq

	cfg := jetstream.ConsumerConfig{
		FilterSubjects:    q.filters(),
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
		DeliverPolicy:     jetstream.DeliverNewPolicy,
	}
	var cons jetstream.Consumer
	var pending, skip uint64
	if !q.Since.IsZero() {
		since := q.Since.UTC()
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
		if cons, err = s.JS.CreateConsumer(ctx, skiff.StreamLogs, cfg); err != nil {
			return fmt.Errorf("read logs: %w", err)
		}
		ci, err := cons.Info(ctx)
		if err != nil {
			s.dropConsumer(cons)
			return fmt.Errorf("read logs: %w", err)
		}
		cfg.OptStartTime = nil
		if pending = ci.NumPending; pending > uint64(q.Tail) {
			// More lines since then than asked for: the last q.Tail
			// lines, all of that time or later, are found as usual.
			s.dropConsumer(cons)
			cons, pending = nil, 0
		}
	}
	switch {
	case cons != nil: // from q.Since
	case q.Tail > 0 && info.State.Msgs > 0:
		window := uint64(q.Tail) * 4
		if window < 1024 {
			window = 1024
		}
		for {
			start := first
			if last >= first+window {
				start = last - window + 1
			}
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
			if cons, err = s.JS.CreateConsumer(ctx, skiff.StreamLogs, cfg); err != nil {
				return fmt.Errorf("read logs: %w", err)
			}
			ci, err := cons.Info(ctx)
			if err != nil {
				s.dropConsumer(cons)
				return fmt.Errorf("read logs: %w", err)
			}
			pending = ci.NumPending
			if pending >= uint64(q.Tail) || start == first {
				break
			}
			s.dropConsumer(cons)
			window *= 8
		}
		if pending > uint64(q.Tail) {
			skip = pending - uint64(q.Tail)
		}
	default:
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
		if cons, err = s.JS.CreateConsumer(ctx, skiff.StreamLogs, cfg); err != nil {
			return fmt.Errorf("read logs: %w", err)
		}
	}
	defer s.dropConsumer(cons)
	return readMessages(ctx, cons, pending, skip, q.Follow, "read logs", func(msg jetstream.Msg) error {
		if line, ok := logLine(msg); ok {
			return fn(line)
		}
		return nil
	})
}

func (s *Store) dropConsumer(c jetstream.Consumer) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.JS.DeleteConsumer(ctx, skiff.StreamLogs, c.CachedInfo().Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.log.Debug("delete log consumer", "err", err)
	}
}

func logLine(msg jetstream.Msg) (skiff.LogLine, bool) {
	_, source, process, ok := skiff.ParseLogSubject(msg.Subject())
	if !ok {
		return skiff.LogLine{}, false
	}
	line := skiff.LogLine{Source: source, Process: process, Line: string(msg.Data())}
	if md, err := msg.Metadata(); err == nil {
		line.Time = md.Timestamp.UTC()
	}
	return line, true
}
