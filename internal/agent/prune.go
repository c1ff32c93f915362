package agent

// Images reach a node by digest: a supervisor (or a one-off) fetches its
// release's image from the slugs object store into the node's image cache,
// which checks the digest, and unpacks it there; the router and the builder
// of the same node share that cache. Every PruneInterval the agent removes
// the images nobody needs from it (pruneImages): those that no assignment
// or instance of this node runs, that are neither an app's current release
// nor the release before it (a rollback should not wait for a download),
// and that were not used within ImageRetention.

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Defaults of Config.PruneInterval and Config.ImageRetention.
const (
	defaultPruneInterval  = 10 * time.Minute
	defaultImageRetention = 24 * time.Hour
)

// setPruneDefaults applies the defaults of the fields of cfg that pruning
// reads.
func setPruneDefaults(cfg *Config) {
	if cfg.PruneInterval == 0 {
		cfg.PruneInterval = defaultPruneInterval
	}
	if cfg.ImageRetention <= 0 {
		cfg.ImageRetention = defaultImageRetention
	}
}

// pruneImages prunes the image cache every PruneInterval until ctx ends.
func (ag *Agent) pruneImages(ctx context.Context) {
	if ag.cfg.PruneInterval < 0 {
		return
	}
	t := time.NewTicker(ag.cfg.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ag.pruneOnce(ctx)
	}
}

// pruneOnce removes the images of the cache that no one needs. Nothing is
// removed when what is needed cannot be read in full.
func (ag *Agent) pruneOnce(ctx context.Context) {
	keep, err := ag.neededImages(ctx)
	if err != nil {
		if ctx.Err() == nil {
			ag.log.Warn("prune images: left for the next time", "err", err)
		}
		return
	}
	removed, freed, err := ag.cfg.Images.Prune(func(digest string) bool { return keep[digest] }, ag.cfg.ImageRetention)
	for _, digest := range removed {
		ag.log.Info("removed an unused image from the cache", "digest", digest)
	}
	if len(removed) > 0 || freed > 0 {
		ag.log.Info("pruned the image cache", "images", len(removed), "freed_bytes", freed,
			"unused_for", ag.cfg.ImageRetention)
	}
	if err != nil {
		ag.log.Warn("prune images", "err", err)
	}
}

// neededImages are the digests of the images this node must keep: those
// of its assignments and of the instances it reports (an instance still
// stopping after its assignment was deleted, a one-off), and of every
// app's current release, the releases on their way to it, and the
// succeeded releases before it back to the first with another image.
func (ag *Agent) neededImages(ctx context.Context) (map[string]bool, error) {
	keep := map[string]bool{}
	assignments, err := ag.st.Assignments.Values(ctx, ag.cfg.Node+".>")
	if err != nil {
		return nil, fmt.Errorf("list assignments: %w", err)
	}
	for _, a := range assignments {
		keep[a.Image.Digest] = true
	}
	apps, err := ag.st.Apps.Values(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	releases, err := ag.st.Releases.Values(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list releases: %w", err)
	}
	instances, err := ag.st.Instances.Values(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}

	byApp := map[string][]skiff.Release{}
	for _, r := range releases {
		byApp[r.App] = append(byApp[r.App], r)
	}
	for _, rels := range byApp {
		slices.SortFunc(rels, func(a, b skiff.Release) int { return b.Version - a.Version }) // newest first
	}
	image := func(app string, version int) (string, bool) {
		for _, r := range byApp[app] {
			if r.Version == version {
				return r.Image.Digest, true
			}
		}
		return "", false
	}
	for _, in := range instances {
		if in.Node == ag.cfg.Node {
			if d, ok := image(in.App, in.Release); ok {
				keep[d] = true
			}
		}
	}
	for _, app := range apps {
		current, _ := image(app.Name, app.Current)
		keep[current] = true
		for _, r := range byApp[app.Name] {
			if r.Version > app.Current {
				if !r.Status.Final() {
					keep[r.Image.Digest] = true // pending or deploying
				}
				continue
			}
			if r.Version == app.Current || r.Status != skiff.ReleaseSucceeded {
				continue
			}
			// A succeeded release before the current one: what a
			// rollback goes back to. A config change makes a release of
			// the same image: go back to the first with another one.
			keep[r.Image.Digest] = true
			if r.Image.Digest != current {
				break
			}
		}
	}
	delete(keep, "")
	return keep, nil
}
