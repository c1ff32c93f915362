package store

import (
	"context"
	"time"
)

// WatchGoneApps calls gone for each app whose files this machine keeps
// (local lists them) but which the apps bucket no longer holds, once the
// watch has caught up with the bucket, and then for each app deleted
// later, until ctx ends. Roles that keep an app's files on their own disk,
// such as build caches and git repositories, clean up with it: an app
// destroyed while they were down is found at their next start.
//
// gone runs on this goroutine, one app at a time. A lost watch is opened
// again after a pause.
func (s *Store) WatchGoneApps(ctx context.Context, local func() ([]string, error), gone func(ctx context.Context, app string)) {
	for ctx.Err() == nil {
		if err := s.watchGoneApps(ctx, local, gone); err != nil && ctx.Err() == nil {
			s.log.Warn("watch for destroyed apps", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (s *Store) watchGoneApps(ctx context.Context, local func() ([]string, error), gone func(ctx context.Context, app string)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes, err := s.Apps.Watch(ctx, "")
	if err != nil {
		return err
	}
	present := map[string]bool{}
	for c := range changes {
		switch {
		case c.Synced:
			names, err := local()
			if err != nil {
				return err
			}
			for _, name := range names {
				if !present[name] {
					present[name] = true // once each
					gone(ctx, name)
				}
			}
			present = nil
		case present != nil:
			present[c.Key] = !c.Deleted
		case c.Deleted:
			gone(ctx, c.Key)
		}
	}
	return ctx.Err()
}
