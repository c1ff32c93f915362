package agent

// Images reach a node by digest: a supervisor (or a one-off) fetches its
// release's image from the slugs object store into the node's image cache,
// which checks the digest, and unpacks it there; the router and the builder
// of the same node share that cache. Every PruneInterval the agent removes
// the images nobody needs from it (Pruner): those that no assignment
// or instance of this node runs, that are neither an app's current release
// nor the release before it (a rollback should not wait for a download),
// and that were not used within ImageRetention.

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/skiff-paas/skiff/internal/image"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// Defaults of Config.PruneInterval and Config.ImageRetention.
const (
	defaultPruneInterval  = 10 * time.Minute
	defaultImageRetention = 24 * time.Hour
)

// setPruneDefaults applies the defaults of a prune interval and image
// retention (Config's, or a Pruner's).
func setPruneDefaults(interval, retention *time.Duration) {
	if *interval == 0 {
		*interval = defaultPruneInterval
	}
	if *retention <= 0 {
		*retention = defaultImageRetention
	}
}

// Pruner keeps a node's image cache clean. The agent runs one; a node
// without the agent role that still fills the cache (its router serving
// static files, its builder) runs one of its own.
type Pruner struct {
	St     *store.Store
	Node   string
	Images *image.Cache
	// Interval is how often it prunes (default 10 min; negative: never);
	// Retention how long an image nobody needs is kept after its last
	// use (default 24 h).
	Interval, Retention time.Duration
	Log                 *slog.Logger
}

// Ready is always true: the pruner needs nothing to start.
func (p *Pruner) Ready() bool { return true }

// Run prunes the image cache every Interval until ctx ends.
func (p *Pruner) Run(ctx context.Context) error {
	if p.Interval < 0 {
		return nil
	}
	setPruneDefaults(&p.Interval, &p.Retention)
	if p.Log == nil {
		p.Log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		p.once(ctx)
	}
}

// pruner is the agent's pruner.
func (ag *Agent) pruner() *Pruner {
	return &Pruner{St: ag.st, Node: ag.cfg.Node, Images: ag.cfg.Images, Interval: ag.cfg.PruneInterval,
		Retention: ag.cfg.ImageRetention, Log: ag.log}
}

// once removes the images of the cache that no one needs. Nothing is
// removed when what is needed cannot be read in full.
func (p *Pruner) once(ctx context.Context) {
	keep, err := p.neededImages(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.Log.Warn("prune images: left for the next time", "err", err)
		}
		return
	}
	removed, freed, err := p.Images.Prune(func(digest string) bool { return keep[digest] }, p.Retention)
	for _, digest := range removed {
		p.Log.Info("removed an unused image from the cache", "digest", digest)
	}
	if len(removed) > 0 || freed > 0 {
		p.Log.Info("pruned the image cache", "images", len(removed), "freed_bytes", freed,
			"unused_for", p.Retention)
	}
	if err != nil {
		p.Log.Warn("prune images", "err", err)
	}
}

// neededImages are the digests of the images this node must keep: those
// of its assignments and of the instances it reports (an instance still
// stopping after its assignment was deleted, a one-off), and of every
// app's current release, the releases on their way to it, and the
// succeeded releases before it back to the first with another image.
func (p *Pruner) neededImages(ctx context.Context) (map[string]bool, error) {
	keep := map[string]bool{}
	assignments, err := p.St.Assignments.Values(ctx, p.Node+".>")
	if err != nil {
		return nil, fmt.Errorf("list assignments: %w", err)
	}
	for _, a := range assignments {
		keep[a.Image.Digest] = true
	}
	apps, err := p.St.Apps.Values(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	releases, err := p.St.Releases.Values(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list releases: %w", err)
	}
	instances, err := p.St.Instances.Values(ctx, "")
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
		if in.Node == p.Node {
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
