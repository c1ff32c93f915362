package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Lease is a named lock held by one holder at a time, kept in the locks
// bucket. It is acquired with a create that fails if the key exists and
// renewed with an update that names the last revision; the bucket's TTL
// removes a lease its holder stopped renewing. The revision is the fencing
// token: whoever acts under the lease checks it where the effect happens.
//
// A Lease is used by one goroutine.
type Lease struct {
	kv     jetstream.KeyValue
	name   string
	holder string
	rev    uint64
	ttl    time.Duration
	// renewed is when the last successful write of the lease was sent:
	// the lease is surely the holder's until ttl after it.
	renewed time.Time
}

type leaseValue struct {
	Holder   string    `json:"holder"`
	Acquired time.Time `json:"acquired"`
}

// Lease returns a handle on the lease name for holder; it holds nothing
// until Acquire succeeds.
func (s *Store) Lease(name, holder string) *Lease {
	return &Lease{kv: s.locks, name: name, holder: holder, ttl: s.opt.LockTTL}
}

// LockTTL is how long a lease survives without renewal.
func (s *Store) LockTTL() time.Duration { return s.opt.LockTTL }

// Held reports whether the lease is surely held: acquired or renewed
// less than three quarters of its TTL ago, and not found taken since. A
// renewal that failed because the bus did not answer (a leader election
// of the locks bucket) leaves it held until then.
func (l *Lease) Held() bool { return l.rev != 0 && time.Since(l.renewed) < l.ttl*3/4 }

// Revision is the fencing token of the lease while held.
func (l *Lease) Revision() uint64 { return l.rev }

// Acquire takes the lease if nobody holds it, or if the holder recorded is
// this same holder (a previous life of this node that did not release it).
// It reports whether the lease is now held.
func (l *Lease) Acquire(ctx context.Context) (bool, error) {
	sent := time.Now()
	data, _ := json.Marshal(leaseValue{Holder: l.holder, Acquired: sent.UTC()})
	rev, err := l.kv.Create(ctx, l.name, data)
	if err == nil {
		l.rev, l.renewed = rev, sent
		return true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return false, fmt.Errorf("acquire lease %s: %w", l.name, err)
	}
	e, err := l.kv.Get(ctx, l.name)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return false, nil // expired meanwhile; try again next time
	}
	if err != nil {
		return false, fmt.Errorf("acquire lease %s: %w", l.name, err)
	}
	var cur leaseValue
	if json.Unmarshal(e.Value(), &cur) != nil || cur.Holder != l.holder {
		return false, nil
	}
	rev, err = l.kv.Update(ctx, l.name, data, e.Revision())
	if err != nil {
		return false, nil
	}
	l.rev, l.renewed = rev, sent
	return true, nil
}

// Renew extends a held lease. An error means it was not renewed: if
// someone else took it or it expired, it is lost for good (Held is
// false); if the bus did not answer, it is still held until its TTL runs
// out (Held says), and Renew may be tried again. Whoever acts under the
// lease must stop while it is not held.
func (l *Lease) Renew(ctx context.Context) error {
	if l.rev == 0 {
		return fmt.Errorf("renew lease %s: not held", l.name)
	}
	sent := time.Now()
	data, _ := json.Marshal(leaseValue{Holder: l.holder, Acquired: sent.UTC()})
	rev, err := l.kv.Update(ctx, l.name, data, l.rev)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyNotFound) || isRevisionConflict(err) {
			l.rev = 0
		}
		return fmt.Errorf("renew lease %s: %w", l.name, err)
	}
	l.rev, l.renewed = rev, sent
	return nil
}

// Release gives the lease up if still held, so that another holder need
// not wait for it to expire.
func (l *Lease) Release(ctx context.Context) {
	if l.rev == 0 {
		return
	}
	_ = l.kv.Delete(ctx, l.name, jetstream.LastRevision(l.rev))
	l.rev = 0
}

// Hold renews a held lease every quarter of its TTL, in a goroutine of its
// own that owns the lease until stop returns, and returns a context that
// ends when ctx does or when the lease is lost (context.Cause says why):
// work that must stop without the lease, yet may take longer than the
// lease lives, runs under it.
func (l *Lease) Hold(ctx context.Context) (held context.Context, stop func()) {
	held, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(l.ttl / 4)
		defer t.Stop()
		for {
			select {
			case <-held.Done():
				return
			case <-t.C:
				// Not under held: a renewal cut off by stop may be
				// written all the same, and then l.rev would not name
				// it and Release could not give the lease up.
				rctx, rcancel := context.WithTimeout(context.WithoutCancel(held), l.ttl/4)
				err := l.Renew(rctx)
				rcancel()
				if err != nil && !l.Held() {
					cancel(err)
					return
				}
			}
		}
	}()
	return held, func() { cancel(nil); <-done }
}

// LeaseHolder names the holder of the lease name, or "" if nobody holds it.
func (s *Store) LeaseHolder(ctx context.Context, name string) (string, error) {
	e, err := s.locks.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var v leaseValue
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return "", err
	}
	return v.Holder, nil
}

// Lead competes for the lease name as holder until ctx ends, and runs lead
// while it holds it: lead returns once the lease is lost (or ctx ends),
// and the lease is competed for again. ready is false while lead runs
// (lead sets it once it is ready to act) and true while another holder
// leads. At the end the lease is given up, so that another holder need
// not wait for it to expire.
func (s *Store) Lead(ctx context.Context, name, holder string, ready *atomic.Bool, log *slog.Logger,
	lead func(context.Context, *Lease) error) {
	lease := s.Lease(name, holder)
	retry := time.NewTicker(s.LockTTL() / 4)
	defer retry.Stop()
	for {
		ok, err := lease.Acquire(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Warn("acquire the "+name+" lease", "err", err)
		case ok:
			log.Info("leading", "fencing", lease.Revision())
			err := lead(ctx, lease)
			ready.Store(false)
			if ctx.Err() != nil {
				release, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				lease.Release(release)
				cancel()
				return
			}
			log.Warn("lost the "+name+" lease", "err", err)
		default:
			ready.Store(true) // another holder leads
		}
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
		}
	}
}
