package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Bucket is a JetStream key-value bucket of JSON-encoded T values.
type Bucket[T any] struct {
	kv  jetstream.KeyValue
	log *slog.Logger
}

// Change is one update seen by a watch.
type Change[T any] struct {
	Key      string
	Value    T
	Revision uint64
	Deleted  bool
	// Synced marks the point where every value present when the watch
	// started has been delivered; such a Change carries nothing else.
	Synced bool
}

// Name is the bucket's name.
func (b *Bucket[T]) Name() string { return b.kv.Bucket() }

// Reads that get no answer are tried again, each try short, until
// readLimit (or the caller's deadline): while a stream elects a new leader
// after a bus node's death, a request to it is answered by nobody, and
// one sent once the new leader is in place is answered at once. Writes
// are not tried again this way: one whose answer was lost may have
// landed.
// A list, whose answer may be long, has longer tries.
const (
	getTry    = 2 * time.Second
	listTry   = 5 * time.Second
	readLimit = 10 * time.Second
	readPause = 100 * time.Millisecond // the least time between two tries
)

// read calls f with tries of at most readTry until it is answered.
func read[V any](ctx context.Context, readTry time.Duration, f func(context.Context) (V, error)) (V, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(readLimit)
	}
	for {
		try := time.Now().Add(readTry)
		if deadline.Before(try) {
			try = deadline
		}
		began := time.Now()
		tctx, cancel := context.WithDeadline(ctx, try)
		v, err := f(tctx)
		cancel()
		if err == nil || ctx.Err() != nil || !time.Now().Before(deadline) || !unanswered(err) {
			return v, err
		}
		// A refusal comes at once (no responders): pause before the next
		// try rather than spin.
		select {
		case <-time.After(time.Until(began.Add(readPause))):
		case <-ctx.Done():
			return v, err
		}
	}
}

// unanswered reports whether err says the bus gave no answer.
func unanswered(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse)
}

// Get returns the value at key and its revision, or skiff.ErrNotFound.
func (b *Bucket[T]) Get(ctx context.Context, key string) (T, uint64, error) {
	var v T
	e, err := read(ctx, getTry, func(ctx context.Context) (jetstream.KeyValueEntry, error) { return b.kv.Get(ctx, key) })
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return v, 0, fmt.Errorf("%s %s: %w", b.Name(), key, skiff.ErrNotFound)
	}
	if err != nil {
		return v, 0, fmt.Errorf("get %s %s: %w", b.Name(), key, err)
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return v, 0, fmt.Errorf("decode %s %s: %w", b.Name(), key, err)
	}
	return v, e.Revision(), nil
}

// Create stores v at key if the key holds nothing, else returns
// skiff.ErrConflict.
func (b *Bucket[T]) Create(ctx context.Context, key string, v T) (uint64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	rev, err := b.kv.Create(ctx, key, data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("create %s %s: %w", b.Name(), key, skiff.ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("create %s %s: %w", b.Name(), key, err)
	}
	return rev, nil
}

// Put stores v at key whatever was there.
func (b *Bucket[T]) Put(ctx context.Context, key string, v T) (uint64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	rev, err := b.kv.Put(ctx, key, data)
	if err != nil {
		return 0, fmt.Errorf("put %s %s: %w", b.Name(), key, err)
	}
	return rev, nil
}

// UpdateAt stores v at key if key is still at revision rev, else returns
// skiff.ErrConflict.
func (b *Bucket[T]) UpdateAt(ctx context.Context, key string, v T, rev uint64) (uint64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	rev, err = b.kv.Update(ctx, key, data, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("update %s %s: %w", b.Name(), key, skiff.ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("update %s %s: %w", b.Name(), key, err)
	}
	return rev, nil
}

// ErrNoChange may be returned by an Update function to leave the value as
// it is; Update then returns the current value and no error.
var ErrNoChange = errors.New("no change")

// Update reads the value at key, applies fn and writes the result back if
// nothing else wrote the key meanwhile, retrying from a fresh read when
// something did. It returns skiff.ErrNotFound if the key holds nothing.
func (b *Bucket[T]) Update(ctx context.Context, key string, fn func(*T) error) (T, uint64, error) {
	for attempt := 0; ; attempt++ {
		v, rev, err := b.Get(ctx, key)
		if err != nil {
			return v, 0, err
		}
		if err := fn(&v); errors.Is(err, ErrNoChange) {
			return v, rev, nil
		} else if err != nil {
			return v, 0, err
		}
		newRev, err := b.UpdateAt(ctx, key, v, rev)
		if errors.Is(err, skiff.ErrConflict) && attempt < 100 {
			continue
		}
		return v, newRev, err
	}
}

// Upsert is Update for a key that may hold nothing yet: fn then starts
// from the zero value and the result is created.
func (b *Bucket[T]) Upsert(ctx context.Context, key string, fn func(*T) error) (T, error) {
	for attempt := 0; ; attempt++ {
		v, rev, err := b.Get(ctx, key)
		if err != nil && !errors.Is(err, skiff.ErrNotFound) {
			return v, err
		}
		if err := fn(&v); errors.Is(err, ErrNoChange) {
			return v, nil
		} else if err != nil {
			return v, err
		}
		if rev == 0 {
			_, err = b.Create(ctx, key, v)
		} else {
			_, err = b.UpdateAt(ctx, key, v, rev)
		}
		if errors.Is(err, skiff.ErrConflict) && attempt < 100 {
			continue
		}
		return v, err
	}
}

// Delete removes key; deleting a missing key is not an error.
func (b *Bucket[T]) Delete(ctx context.Context, key string) error {
	if err := b.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete %s %s: %w", b.Name(), key, err)
	}
	return nil
}

// DeleteAt removes key if it is still at revision rev, else returns
// skiff.ErrConflict.
func (b *Bucket[T]) DeleteAt(ctx context.Context, key string, rev uint64) error {
	err := b.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	if isRevisionConflict(err) {
		return fmt.Errorf("delete %s %s: %w", b.Name(), key, skiff.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", b.Name(), key, err)
	}
	return nil
}

func isRevisionConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Unavailable says, of an error the bus gave, that the state did not
// answer in time (a stream electing a leader after a bus node's death, a
// network blip): a fault that passes, which the caller may retry. Other
// errors are returned as they are.
func Unavailable(err error) error {
	var e *skiff.Error
	if err == nil || errors.As(err, &e) {
		return err
	}
	if unanswered(err) || errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrDisconnected) {
		return &skiff.Error{Kind: skiff.KindUnavailable, Message: "the platform's state did not answer in time", Err: err,
			Hint: "a bus node may be failing over: try again in a few seconds"}
	}
	return err
}

// Apply records a watched change in a map of a bucket's values by key.
func Apply[T any](m map[string]T, key string, deleted bool, v T) {
	if deleted {
		delete(m, key)
		return
	}
	m[key] = v
}

// List returns every value whose key matches filter (a NATS subject
// pattern such as "myapp.>"; empty for all), in key order of the stream.
func (b *Bucket[T]) List(ctx context.Context, filter string) ([]Change[T], error) {
	return read(ctx, listTry, func(ctx context.Context) ([]Change[T], error) { return b.list(ctx, filter) })
}

func (b *Bucket[T]) list(ctx context.Context, filter string) ([]Change[T], error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := b.watcher(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var out []Change[T]
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("list %s: watch closed", b.Name())
			}
			if e == nil {
				return out, nil
			}
			if c, ok := b.decode(e); ok && !c.Deleted {
				out = append(out, c)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Values is List without the keys and revisions.
func (b *Bucket[T]) Values(ctx context.Context, filter string) ([]T, error) {
	changes, err := b.List(ctx, filter)
	if err != nil {
		return nil, err
	}
	out := make([]T, len(changes))
	for i, c := range changes {
		out[i] = c.Value
	}
	return out, nil
}

// Watch delivers every current value matching filter, then a Synced
// change, then every later change, until ctx ends; then it closes the
// channel. Values that do not decode are logged and skipped.
func (b *Bucket[T]) Watch(ctx context.Context, filter string) (<-chan Change[T], error) {
	w, err := b.watcher(ctx, filter)
	if err != nil {
		return nil, err
	}
	out := make(chan Change[T], 64)
	go func() {
		defer close(out)
		defer w.Stop()
		for {
			var c Change[T]
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					c.Synced = true
				} else if c, ok = b.decode(e); !ok {
					continue
				}
			case <-ctx.Done():
				return
			}
			select {
			case out <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (b *Bucket[T]) watcher(ctx context.Context, filter string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	if filter == "" {
		filter = ">"
	}
	w, err := b.kv.Watch(ctx, filter, opts...)
	if err != nil {
		return nil, fmt.Errorf("watch %s %s: %w", b.Name(), filter, err)
	}
	return w, nil
}

func (b *Bucket[T]) decode(e jetstream.KeyValueEntry) (Change[T], bool) {
	c := Change[T]{Key: e.Key(), Revision: e.Revision()}
	if e.Operation() != jetstream.KeyValuePut {
		c.Deleted = true
		return c, true
	}
	if err := json.Unmarshal(e.Value(), &c.Value); err != nil {
		b.log.Warn("skipping undecodable value", "bucket", b.Name(), "key", e.Key(), "err", err)
		return c, false
	}
	return c, true
}
