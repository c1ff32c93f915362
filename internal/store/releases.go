package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// ListReleases returns app's releases, oldest first.
func (s *Store) ListReleases(ctx context.Context, app string) ([]skiff.Release, error) {
	rels, err := s.Releases.Values(ctx, app+".*")
	if err != nil {
		return nil, err
	}
	sort.Slice(rels, func(i, j int) bool { return rels[i].Version < rels[j].Version })
	return rels, nil
}

// Release returns one release of app, or an error of kind not-found that
// says how to list them.
func (s *Store) Release(ctx context.Context, app string, version int) (skiff.Release, uint64, error) {
	r, rev, err := s.Releases.Get(ctx, skiff.ReleaseKey(app, version))
	if errors.Is(err, skiff.ErrNotFound) {
		return r, 0, &skiff.Error{Kind: skiff.KindNotFound, Err: err,
			Message: fmt.Sprintf("app %s has no release %s", app, skiff.VersionLabel(version)),
			Hint:    "skiff releases -a " + app + " lists the releases"}
	}
	return r, rev, err
}

// BaseRelease is the release a config change or restart builds on: the
// newest one that is serving or on its way to serving. ok is false when the
// app has none (nothing deployed yet, or every deploy failed).
func BaseRelease(rels []skiff.Release, current int) (r skiff.Release, ok bool) {
	for i := len(rels) - 1; i >= 0; i-- {
		switch rels[i].Status {
		case skiff.ReleasePending, skiff.ReleaseDeploying:
			return rels[i], true
		}
		if rels[i].Version == current {
			return rels[i], true
		}
	}
	return r, false
}

// CreateRelease stores r as app's next release, numbered one past the
// newest, with status pending, and records the event. It returns the
// release as stored.
func (s *Store) CreateRelease(ctx context.Context, r skiff.Release) (skiff.Release, error) {
	r.Status = skiff.ReleasePending
	r.StatusReason = ""
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now().UTC()
	}
	for attempt := 0; attempt < 100; attempt++ {
		rels, err := s.ListReleases(ctx, r.App)
		if err != nil {
			return r, err
		}
		r.Version = 1
		if len(rels) > 0 {
			r.Version = rels[len(rels)-1].Version + 1
		}
		_, err = s.Releases.Create(ctx, skiff.ReleaseKey(r.App, r.Version), r)
		if errors.Is(err, skiff.ErrConflict) {
			continue
		}
		if err != nil {
			return r, err
		}
		s.Emit(skiff.Event{App: r.App, Type: skiff.EventReleaseCreated, Release: r.Version, Actor: r.CreatedBy,
			Component: "api", Message: fmt.Sprintf("Release %s created: %s", r.Label(), r.Description)})
		return r, nil
	}
	return r, fmt.Errorf("create release of %s: too many concurrent releases", r.App)
}

// WaitRelease watches app's release version until its status is final or
// ctx ends, calling progress with each status it sees. It returns the
// release in its final status.
func (s *Store) WaitRelease(ctx context.Context, app string, version int, progress func(skiff.Release)) (skiff.Release, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes, err := s.Releases.Watch(ctx, skiff.ReleaseKey(app, version))
	if err != nil {
		return skiff.Release{}, err
	}
	var last skiff.Release
	for c := range changes {
		switch {
		case c.Synced:
			continue
		case c.Deleted:
			return last, fmt.Errorf("release %s of %s was deleted", skiff.VersionLabel(version), app)
		}
		if c.Value.Status != last.Status && progress != nil {
			progress(c.Value)
		}
		last = c.Value
		if last.Status.Final() {
			return last, nil
		}
	}
	return last, ctx.Err()
}

// ReleaseConfig makes a release of the app's base release with new config.
// It makes none (and reports so) when the app has nothing deployed, or,
// if onlyIfBehind, when the base release has that config version already.
func (s *Store) ReleaseConfig(ctx context.Context, app skiff.App, vars map[string]string, version int, desc, actor string, onlyIfBehind bool) (skiff.Release, bool, error) {
	rels, err := s.ListReleases(ctx, app.Name)
	if err != nil {
		return skiff.Release{}, false, err
	}
	base, ok := BaseRelease(rels, app.Current)
	if !ok || (onlyIfBehind && base.ConfigVersion >= version) {
		return skiff.Release{}, false, nil
	}
	sealed, err := s.SealConfig(vars)
	if err != nil {
		return skiff.Release{}, false, err
	}
	next := base.Derive(desc, actor)
	next.ConfigVersion, next.ConfigSealed = version, sealed
	rel, err := s.CreateRelease(ctx, next)
	return rel, err == nil, err
}
