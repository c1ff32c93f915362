// Package drains ships apps' log lines to receivers elsewhere: syslog
// servers over TCP or TLS (RFC 5424 messages in octet-counted frames,
// RFC 6587) and HTTPS endpoints (batches POSTed as Heroku's HTTPS drains
// do). It is part of the metrics role.
//
// Every node with the role runs a Runner. It watches the drains bucket
// and, for each drain, competes for the drain's lease (skiff.DrainLease):
// the holder ships it, the others stand by, so one node ships each drain
// and drains spread over the nodes. The holder reads the app's lines
// from a durable consumer of the LOGS stream, one per drain
// (skiff.DrainConsumer), that acknowledges each line once the receiver
// has it or once it was dropped: where the consumer's acknowledgements
// end is where shipping resumes after a restart or on another node.
//
//	lease taken ─► consumer made again from its ack floor (or, new, from
//	               the drain's creation) ─► fill: lines into the buffer
//	                                       ─► send: batches to the receiver
//	                                       ─► report: status, drop lines
//	lease lost, drain removed or shutdown ─► all three stop
//
// The buffer holds Config.Buffer lines waiting; past that the oldest is
// dropped (and acknowledged, so the consumer keeps delivering the newest),
// counted in the drain's status and told of in a platform log line of
// the app every few seconds while it lasts. A batch that fails is sent
// again, whole, with exponential backoff, until it succeeds or the lease
// is lost: delivery is at least once, in order, within what the receiver
// confirms (an HTTPS answer; for syslog, a write on a connection the
// receiver has not closed).
package drains

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/backoff"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// Config configures the drains of one node.
type Config struct {
	// Node names this node as the holder of drains' leases. Required.
	Node string
	// RootCAs are the certificate authorities trusted for TLS and HTTPS
	// receivers (default: the system's).
	RootCAs *x509.CertPool
	// Buffer is how many lines of a drain may wait for its receiver
	// (default 10000); past it the oldest are dropped.
	Buffer int
	// BatchLines is the most lines sent at once (default 500);
	// BatchEvery how long an HTTPS drain gathers lines before it sends
	// fewer (default 1 s). Syslog drains send what they have at once.
	BatchLines int
	BatchEvery time.Duration
	// RetryMin and RetryMax bound the backoff between tries of a failed
	// batch (default 500 ms, doubled up to 30 s).
	RetryMin, RetryMax time.Duration
	// StatusEvery is how often a drain's status is reported (default 2 s).
	StatusEvery time.Duration
	// Timeout bounds a connect, a write, or an HTTPS request (default 10 s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Runner runs the drains of one node.
type Runner struct {
	cfg   Config
	st    *store.Store
	log   *slog.Logger
	ready atomic.Bool
}

// New validates cfg and returns a runner.
func New(cfg Config, st *store.Store) (*Runner, error) {
	if cfg.Node == "" {
		return nil, errors.New("drains: Node is required")
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 10000
	}
	if cfg.BatchLines <= 0 {
		cfg.BatchLines = 500
	}
	def(&cfg.BatchEvery, time.Second)
	def(&cfg.RetryMin, 500*time.Millisecond)
	def(&cfg.RetryMax, 30*time.Second)
	def(&cfg.StatusEvery, 2*time.Second)
	def(&cfg.Timeout, 10*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: cfg, st: st, log: cfg.Logger.With("role", "drains")}, nil
}

// Ready reports whether the runner has taken up the drains there are.
func (r *Runner) Ready() bool { return r.ready.Load() }

// closed is a watch that ended at once.
var closed = func() chan store.Change[skiff.Drain] {
	ch := make(chan store.Change[skiff.Drain])
	close(ch)
	return ch
}()

// errRemoved ends the shipping of a drain that was removed.
var errRemoved = errors.New("the drain was removed")

// Run runs the drains until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	running := map[string]context.CancelCauseFunc{}
	stop := func(key string) {
		if cancel, ok := running[key]; ok {
			cancel(errRemoved)
			delete(running, key)
		}
	}
	for {
		changes, err := r.st.Drains.Watch(ctx, "*.*")
		if err != nil {
			r.log.Warn("watch drains", "err", err)
			changes = closed
		}
		seen := map[string]bool{}
		for c := range changes {
			switch {
			case c.Synced:
				for key := range running {
					if !seen[key] {
						stop(key)
					}
				}
				r.ready.Store(true)
			case c.Deleted:
				stop(c.Key)
			default:
				seen[c.Key] = true
				if _, ok := running[c.Key]; ok {
					continue
				}
				dctx, cancel := context.WithCancelCause(ctx)
				running[c.Key] = cancel
				wg.Add(1)
				go func(d skiff.Drain) {
					defer wg.Done()
					r.drain(dctx, d)
				}(c.Value)
			}
		}
		select { // the watch broke off: watch again
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// drain competes for d's lease and ships d while holding it, until ctx
// ends.
func (r *Runner) drain(ctx context.Context, d skiff.Drain) {
	log := r.log.With("app", d.App, "drain", d.ID)
	var standby atomic.Bool
	r.st.Lead(ctx, skiff.DrainLease(d.App, d.ID), r.cfg.Node, &standby, log, func(ctx context.Context, lease *store.Lease) error {
		return r.ship(ctx, lease, d, log)
	})
	if errors.Is(context.Cause(ctx), errRemoved) {
		// The API removes them too; whoever comes first.
		bg, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.st.JS.DeleteConsumer(bg, skiff.StreamLogs, skiff.DrainConsumer(d.App, d.ID)); err != nil &&
			!errors.Is(err, jetstream.ErrConsumerNotFound) {
			log.Warn("delete the drain's consumer", "err", err)
		}
		_ = r.st.DrainStats.Delete(bg, skiff.DrainStatusKey(d.App, d.ID))
	}
}

// ship ships d until ctx ends or the lease is lost.
func (r *Runner) ship(ctx context.Context, lease *store.Lease, d skiff.Drain, log *slog.Logger) error {
	held, stop := lease.Hold(ctx)
	defer stop()
	ctx, cancel := context.WithCancelCause(held)
	defer cancel(nil)
	snd, err := newSender(d.URL, d.ID, r.cfg.RootCAs, r.cfg.Timeout)
	if err != nil {
		return err
	}
	defer snd.close()
	cons, err := r.consumer(ctx, d)
	if err != nil {
		return fmt.Errorf("drain %s: %w", d.ID, err)
	}
	sh := &shipper{cfg: r.cfg, st: r.st, d: d, log: log, wake: make(chan struct{}, 1)}
	if st, _, err := r.st.DrainStats.Get(ctx, skiff.DrainStatusKey(d.App, d.ID)); err == nil {
		sh.stat.Sent, sh.stat.Dropped, sh.reported = st.Sent, st.Dropped, st.Dropped
	}
	sh.stat.Node, sh.stat.State = r.cfg.Node, skiff.DrainShipping
	var wg sync.WaitGroup
	wg.Go(func() { sh.fill(ctx, cons, cancel) })
	wg.Go(func() { sh.report(ctx) })
	sh.sendAll(ctx, snd)
	cancel(nil)
	wg.Wait()
	return context.Cause(ctx)
}

// consumer makes d's durable consumer again, from the line after the
// last one acknowledged, so that the lines a previous holder had not
// shipped come first, at once, in order. A drain without one yet starts
// at its creation.
func (r *Runner) consumer(ctx context.Context, d skiff.Drain) (jetstream.Consumer, error) {
	name := skiff.DrainConsumer(d.App, d.ID)
	start := d.CreatedAt
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		FilterSubject: skiff.LogSubject(d.App, "*", ">"),
		AckPolicy:     jetstream.AckExplicitPolicy,
		// A batch waits for its receiver as long as it must: nothing is
		// delivered again meanwhile; the next holder starts from the ack
		// floor instead.
		AckWait:       24 * time.Hour,
		MaxDeliver:    -1,
		MaxAckPending: r.cfg.Buffer + 2*r.cfg.BatchLines,
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  &start,
	}
	old, err := r.st.JS.Consumer(ctx, skiff.StreamLogs, name)
	switch {
	case err == nil:
		if floor := old.CachedInfo().AckFloor.Stream; floor > 0 {
			cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartSequencePolicy, floor+1, nil
		}
		if err := r.st.JS.DeleteConsumer(ctx, skiff.StreamLogs, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, err
		}
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, err
	}
	return r.st.JS.CreateConsumer(ctx, skiff.StreamLogs, cfg)
}

// shipper ships one drain while its node holds the lease: fill puts
// lines into the buffer, sendAll takes batches out to the receiver,
// report writes the status.
type shipper struct {
	cfg  Config
	st   *store.Store
	d    skiff.Drain
	log  *slog.Logger
	wake chan struct{} // a line was buffered

	mu       sync.Mutex // guards the rest
	buf      []pending  // waiting, oldest first
	lastSeq  uint64     // of the newest line buffered
	sentSeq  uint64     // of the newest line sent
	stat     skiff.DrainStatus
	reported uint64 // dropped lines told of in the app's logs
}

// pending is a line with the message to acknowledge once it is sent.
type pending struct {
	line
	msg jetstream.Msg
}

// fill reads the drain's lines from its consumer into the buffer.
func (s *shipper) fill(ctx context.Context, cons jetstream.Consumer, cancel context.CancelCauseFunc) {
	it, err := cons.Messages(jetstream.PullMaxMessages(min(s.cfg.BatchLines, s.cfg.Buffer)))
	if err != nil {
		cancel(fmt.Errorf("read the drain's lines: %w", err))
		return
	}
	go func() { <-ctx.Done(); it.Stop() }()
	for {
		m, err := it.Next()
		switch {
		case errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil:
			return
		case errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound):
			cancel(fmt.Errorf("read the drain's lines: %w", err))
			return
		case err != nil:
			s.log.Debug("read the drain's lines", "err", err)
			continue
		}
		md, err := m.Metadata()
		_, source, process, ok := skiff.ParseLogSubject(m.Subject())
		if err != nil || !ok {
			_ = m.Ack()
			continue
		}
		s.add(pending{line{seq: md.Sequence.Stream, time: md.Timestamp, app: s.d.App, source: source, process: process,
			text: m.Data()}, m})
	}
}

// add buffers a line, dropping the oldest if the buffer is full.
func (s *shipper) add(p pending) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.seq <= s.lastSeq { // delivered again
		if p.seq <= s.sentSeq {
			_ = p.msg.Ack()
		}
		return
	}
	s.lastSeq = p.seq
	if len(s.buf) >= s.cfg.Buffer {
		_ = s.buf[0].msg.Ack() // gone: the consumer may deliver the next
		s.buf[0] = pending{}
		s.buf = s.buf[1:]
		s.stat.Dropped++
	}
	s.buf = append(s.buf, p)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// sendAll sends batches until ctx ends, each until it succeeds.
func (s *shipper) sendAll(ctx context.Context, snd sender) {
	every := s.cfg.BatchEvery
	if _, ok := snd.(*syslogSender); ok {
		every = 0
	}
	for {
		ps := s.next(ctx, every)
		if ps == nil {
			return
		}
		b := batch{id: fmt.Sprintf("%s-%d-%d", s.d.ID, ps[0].seq, ps[len(ps)-1].seq), lines: make([]line, len(ps))}
		for i, p := range ps {
			b.lines[i] = p.line
		}
		for try := 0; ; try++ {
			err := snd.send(ctx, b)
			if err == nil {
				s.sent(ps)
				break
			}
			if ctx.Err() != nil {
				return // not acknowledged: the next holder sends them
			}
			s.failed(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff.Doubling(try+1, s.cfg.RetryMin, s.cfg.RetryMax)):
			}
		}
	}
}

// next takes the next batch out of the buffer: BatchLines lines, or
// fewer once the first has waited every; nil once ctx ends.
func (s *shipper) next(ctx context.Context, every time.Duration) []pending {
	var due <-chan time.Time
	flush := every == 0
	for {
		s.mu.Lock()
		n := len(s.buf)
		if n >= s.cfg.BatchLines || n > 0 && flush {
			k := min(n, s.cfg.BatchLines)
			out := make([]pending, k)
			copy(out, s.buf)
			clear(s.buf[:k])
			s.buf = s.buf[k:]
			s.mu.Unlock()
			return out
		}
		s.mu.Unlock()
		if n > 0 && due == nil {
			t := time.NewTimer(every)
			defer t.Stop()
			due = t.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-due:
			flush = true
		}
	}
}

func (s *shipper) sent(ps []pending) {
	for _, p := range ps {
		_ = p.msg.Ack()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sentSeq = max(s.sentSeq, ps[len(ps)-1].seq)
	s.stat.Sent += uint64(len(ps))
	s.stat.SentAt = time.Now().UTC()
	s.stat.State = skiff.DrainShipping
}

func (s *shipper) failed(err error) {
	s.log.Debug("drain failed", "err", err)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stat.State, s.stat.Error, s.stat.ErrorAt = skiff.DrainRetrying, err.Error(), time.Now().UTC()
}

// report writes the drain's status every StatusEvery while it changes
// (and every 20 s regardless, to show it is shipped), and tells the
// app's logs of lines dropped since the last time.
func (s *shipper) report(ctx context.Context) {
	t := time.NewTicker(s.cfg.StatusEvery)
	defer t.Stop()
	var last skiff.DrainStatus
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		st := s.stat
		st.Buffered = len(s.buf)
		dropped := st.Dropped - s.reported
		s.reported = st.Dropped
		s.mu.Unlock()
		if dropped > 0 {
			why := "the receiver did not keep up"
			if st.State == skiff.DrainRetrying {
				why = "last error: " + st.Error
			}
			s.st.Log(s.d.App, skiff.SourcePlatform, "drains", skiff.DrainDropMessage(s.d.ID, dropped, s.cfg.Buffer, why))
		}
		now := time.Now().UTC()
		if st.Sent == last.Sent && st.Dropped == last.Dropped && st.State == last.State && st.Buffered == last.Buffered &&
			now.Sub(last.Time) < 20*time.Second {
			continue
		}
		st.Time = now
		if _, err := s.st.DrainStats.Put(ctx, skiff.DrainStatusKey(s.d.App, s.d.ID), st); err != nil {
			if ctx.Err() == nil {
				s.log.Warn("report the drain's status", "err", err)
			}
			continue
		}
		last = st
	}
}
