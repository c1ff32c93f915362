// Package store gives the roles typed access to the platform state kept in
// the bus: key-value buckets of JSON records, the object stores of sources
// and images, and the LOGS and EVENTS streams.
//
// Open creates every bucket and stream it finds missing, so the first role
// to start on a fresh bus lays out the state and later ones find it.
// Records are written with optimistic concurrency: Bucket.Update reads a
// revision, changes the value and writes it back only if the revision is
// still the latest, retrying otherwise.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// Options tunes the layout Open creates. Zero values take the defaults.
type Options struct {
	// Replicas is the number of copies JetStream keeps of each bucket,
	// stream and object store: 1 on a single node, 3 in a cluster.
	Replicas int
	// LogMaxAge and LogMaxBytes bound the LOGS stream (default 7 days, 1 GiB).
	LogMaxAge   time.Duration
	LogMaxBytes int64
	// LogAppMaxBytes is how many bytes of logs each app keeps by default
	// (default 64 MiB); apps may be given their own (skiff.LogRetention).
	LogAppMaxBytes int64
	// EventMaxAge bounds the EVENTS stream (default 90 days).
	EventMaxAge time.Duration
	// UsageMaxAge bounds the USAGE stream of metering samples (default
	// 400 days: a year of bills and their disputes).
	UsageMaxAge time.Duration
	// MetricsMaxAge bounds the METRICS stream of routers' raw samples
	// (default 7 days); the points folded from them keep as long as
	// skiff.Resolutions say.
	MetricsMaxAge time.Duration
	// NodeTTL is how long a node record outlives its last heartbeat
	// (default a day: a dead node stays listed, dead, for that long unless
	// removed; a node that stops cleanly removes its own record).
	NodeTTL time.Duration
	// LockTTL is how long a lease outlives its last renewal (default 6 s):
	// how long a dead leader is waited for.
	LockTTL time.Duration
	Logger  *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.LogMaxAge == 0 {
		o.LogMaxAge = 7 * 24 * time.Hour
	}
	if o.LogMaxBytes == 0 {
		o.LogMaxBytes = 1 << 30
	}
	if o.LogAppMaxBytes == 0 {
		o.LogAppMaxBytes = min(64<<20, o.LogMaxBytes)
	}
	if o.EventMaxAge == 0 {
		o.EventMaxAge = 90 * 24 * time.Hour
	}
	if o.UsageMaxAge == 0 {
		o.UsageMaxAge = 400 * 24 * time.Hour
	}
	if o.MetricsMaxAge == 0 {
		o.MetricsMaxAge = 7 * 24 * time.Hour
	}
	if o.NodeTTL == 0 {
		o.NodeTTL = 24 * time.Hour
	}
	if o.LockTTL == 0 {
		o.LockTTL = 6 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Store is a client's handle on the platform state. It is safe for
// concurrent use.
type Store struct {
	NC  *nats.Conn
	JS  jetstream.JetStream
	box *secret.Box
	log *slog.Logger
	opt Options

	Apps        *Bucket[skiff.App]
	Releases    *Bucket[skiff.Release]
	Configs     *Bucket[ConfigRecord]
	Formations  *Bucket[skiff.Formation]
	Assignments *Bucket[skiff.Assignment]
	Instances   *Bucket[skiff.Instance]
	Nodes       *Bucket[skiff.Node]
	Domains     *Bucket[skiff.Domain]
	Tokens      *Bucket[skiff.Token]
	Keys        *Bucket[skiff.Key]
	UIDs        *Bucket[string] // uid -> app
	Certs       *Bucket[skiff.Cert]
	ACME        *Bucket[[]byte] // sealed
	Cron        *Bucket[skiff.CronRun]
	Addons      *Bucket[skiff.Addon]
	Services    *Bucket[skiff.Service]
	ServiceStat *Bucket[skiff.ServiceStatus]
	Backups     *Bucket[skiff.Backup]
	UsageHours  *Bucket[skiff.UsageHour] // the metrics role's hourly usage records
	Webhooks    *Bucket[skiff.Webhook]
	Deliveries  *Bucket[skiff.WebhookStatus]
	AlertRules  *Bucket[skiff.AlertRule]
	Alerts      *Bucket[skiff.Alert]
	Drains      *Bucket[skiff.Drain]       // by skiff.DrainKey
	DrainStats  *Bucket[skiff.DrainStatus] // the same bucket, by skiff.DrainStatusKey
	locks       jetstream.KeyValue

	Sources jetstream.ObjectStore
	Slugs   jetstream.ObjectStore
	// BackupFiles holds the add-ons' backups.
	BackupFiles jetstream.ObjectStore
}

// Open connects the state layout to nc, creating what is missing. box seals
// config values; it may be nil for roles that never read config.
func Open(ctx context.Context, nc *nats.Conn, box *secret.Box, opt Options) (*Store, error) {
	opt.setDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	s := &Store{NC: nc, JS: js, box: box, log: opt.Logger, opt: opt}

	// A bucket or stream keeps the replicas it has when it has more than
	// opt says: a node of a cluster that restarts never lowers them.
	replicas := func(stream string) int {
		if st, err := js.Stream(ctx, stream); err == nil && st.CachedInfo().Config.Replicas > opt.Replicas {
			return st.CachedInfo().Config.Replicas
		}
		return opt.Replicas
	}
	kv := func(name string, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
		cfg.Bucket = name
		cfg.Replicas = replicas("KV_" + name)
		cfg.Storage = jetstream.FileStorage
		if cfg.History == 0 {
			cfg.History = 1
		}
		// A bucket as wanted is taken as it is: nodes starting together
		// would otherwise each propose the same update.
		if st, err := js.Stream(ctx, "KV_"+name); err == nil {
			have := st.CachedInfo().Config
			if have.Replicas >= cfg.Replicas && have.MaxAge == cfg.TTL && have.MaxMsgsPerSubject == int64(cfg.History) && !directReads(have) {
				return js.KeyValue(ctx, name)
			}
		}
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return nil, fmt.Errorf("open bucket %s: %w", name, err)
		}
		if err := readFromLeader(ctx, js, "KV_"+name); err != nil {
			return nil, fmt.Errorf("open bucket %s: %w", name, err)
		}
		return js.KeyValue(ctx, name)
	}
	var errs []error
	open := func(name string, cfg jetstream.KeyValueConfig) jetstream.KeyValue {
		b, err := kv(name, cfg)
		errs = append(errs, err)
		return b
	}
	s.Apps = bucket[skiff.App](open(skiff.BucketApps, jetstream.KeyValueConfig{}), s.log)
	s.Releases = bucket[skiff.Release](open(skiff.BucketReleases, jetstream.KeyValueConfig{}), s.log)
	s.Configs = bucket[ConfigRecord](open(skiff.BucketConfig, jetstream.KeyValueConfig{}), s.log)
	s.Formations = bucket[skiff.Formation](open(skiff.BucketFormation, jetstream.KeyValueConfig{}), s.log)
	s.Assignments = bucket[skiff.Assignment](open(skiff.BucketAssignments, jetstream.KeyValueConfig{}), s.log)
	s.Instances = bucket[skiff.Instance](open(skiff.BucketInstances, jetstream.KeyValueConfig{}), s.log)
	s.Nodes = bucket[skiff.Node](open(skiff.BucketNodes, jetstream.KeyValueConfig{
		TTL: opt.NodeTTL, LimitMarkerTTL: opt.NodeTTL,
	}), s.log)
	s.Domains = bucket[skiff.Domain](open(skiff.BucketDomains, jetstream.KeyValueConfig{}), s.log)
	s.Tokens = bucket[skiff.Token](open(skiff.BucketTokens, jetstream.KeyValueConfig{}), s.log)
	s.Keys = bucket[skiff.Key](open(skiff.BucketKeys, jetstream.KeyValueConfig{}), s.log)
	s.UIDs = bucket[string](open(skiff.BucketUIDs, jetstream.KeyValueConfig{}), s.log)
	s.Certs = bucket[skiff.Cert](open(skiff.BucketCerts, jetstream.KeyValueConfig{}), s.log)
	s.ACME = bucket[[]byte](open(skiff.BucketACME, jetstream.KeyValueConfig{}), s.log)
	// Claims of cron slots expire by their own TTL (cron.go); the jobs'
	// last runs stay.
	s.Cron = bucket[skiff.CronRun](open(skiff.BucketCron, jetstream.KeyValueConfig{LimitMarkerTTL: time.Minute}), s.log)
	s.Addons = bucket[skiff.Addon](open(skiff.BucketAddons, jetstream.KeyValueConfig{}), s.log)
	s.Services = bucket[skiff.Service](open(skiff.BucketServices, jetstream.KeyValueConfig{}), s.log)
	s.ServiceStat = bucket[skiff.ServiceStatus](open(skiff.BucketServiceStat, jetstream.KeyValueConfig{}), s.log)
	s.Backups = bucket[skiff.Backup](open(skiff.BucketBackups, jetstream.KeyValueConfig{}), s.log)
	s.UsageHours = bucket[skiff.UsageHour](open(skiff.BucketUsageHours, jetstream.KeyValueConfig{}), s.log)
	s.Webhooks = bucket[skiff.Webhook](open(skiff.BucketWebhooks, jetstream.KeyValueConfig{}), s.log)
	s.Deliveries = bucket[skiff.WebhookStatus](open(skiff.BucketDeliveries, jetstream.KeyValueConfig{}), s.log)
	s.AlertRules = bucket[skiff.AlertRule](open(skiff.BucketAlertRules, jetstream.KeyValueConfig{}), s.log)
	s.Alerts = bucket[skiff.Alert](open(skiff.BucketAlerts, jetstream.KeyValueConfig{}), s.log)
	drains := open(skiff.BucketDrains, jetstream.KeyValueConfig{})
	s.Drains, s.DrainStats = bucket[skiff.Drain](drains, s.log), bucket[skiff.DrainStatus](drains, s.log)
	s.locks = open(skiff.BucketLocks, jetstream.KeyValueConfig{TTL: opt.LockTTL, LimitMarkerTTL: opt.LockTTL})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	objects := func(name string) (jetstream.ObjectStore, error) {
		want := replicas("OBJ_" + name)
		// As for buckets, a store as wanted is taken as it is: an update
		// would also turn direct reads back on for a moment, and a node
		// binding a handle then would read with direct gets that nobody
		// answers once they are off again.
		if st, err := js.Stream(ctx, "OBJ_"+name); err == nil {
			if have := st.CachedInfo().Config; have.Replicas >= want && !directReads(have) {
				return js.ObjectStore(ctx, name)
			}
		}
		_, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket: name, Replicas: want, Storage: jetstream.FileStorage,
		})
		if err == nil {
			err = readFromLeader(ctx, js, "OBJ_"+name)
		}
		if err != nil {
			return nil, fmt.Errorf("open object store %s: %w", name, err)
		}
		return js.ObjectStore(ctx, name)
	}
	if s.Sources, err = objects(skiff.ObjectSources); err != nil {
		return nil, err
	}
	if s.Slugs, err = objects(skiff.ObjectSlugs); err != nil {
		return nil, err
	}
	if s.BackupFiles, err = objects(skiff.ObjectBackups); err != nil {
		return nil, err
	}

	streams := []jetstream.StreamConfig{{
		Name:        skiff.StreamLogs,
		Subjects:    []string{"logs.>"},
		MaxAge:      opt.LogMaxAge,
		MaxBytes:    opt.LogMaxBytes,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		Replicas:    opt.Replicas,
		Compression: jetstream.S2Compression,
		// Log lines are not control-plane state: they may be flushed in
		// batches rather than fsynced one by one.
		PersistMode: jetstream.AsyncPersistMode,
	}, {
		Name:      skiff.StreamEvents,
		Subjects:  []string{"events.>"},
		MaxAge:    opt.EventMaxAge,
		Discard:   jetstream.DiscardOld,
		Storage:   jetstream.FileStorage,
		Replicas:  opt.Replicas,
		Retention: jetstream.LimitsPolicy,
	}, {
		Name:      skiff.StreamUsage,
		Subjects:  []string{"usage.>"},
		MaxAge:    opt.UsageMaxAge,
		Discard:   jetstream.DiscardOld,
		Storage:   jetstream.FileStorage,
		Replicas:  opt.Replicas,
		Retention: jetstream.LimitsPolicy,
	}, {
		// Webhook and email deliveries waiting for a try (DeliveryJob):
		// each is taken by one metrics node and removed once delivered
		// or given up; retries wait in the consumer.
		Name:      skiff.StreamDeliveries,
		Subjects:  []string{"deliveries.>"},
		MaxAge:    24 * time.Hour,
		Discard:   jetstream.DiscardOld,
		Storage:   jetstream.FileStorage,
		Replicas:  opt.Replicas,
		Retention: jetstream.WorkQueuePolicy,
	}}
	streams = append(streams, metricsStreams(opt)...) // metrics.go
	for _, cfg := range streams {
		if cfg.Replicas = replicas(cfg.Name); cfg.Replicas > 1 {
			cfg.PersistMode = jetstream.DefaultPersistMode // async is for one replica only
		}
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("open stream %s: %w", cfg.Name, err)
		}
	}
	return s, nil
}

// directReads reports whether a replicated stream answers direct gets:
// any replica may answer one, even one that has not applied the last
// write yet, so a read right after a write (a source just uploaded, a
// record just changed) could miss it. The state's streams are read from
// their leaders instead; one replica is its own leader.
func directReads(cfg jetstream.StreamConfig) bool { return cfg.Replicas > 1 && cfg.AllowDirect }

// readFromLeader turns direct reads off on a replicated stream.
func readFromLeader(ctx context.Context, js jetstream.JetStream, stream string) error {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	cfg := st.CachedInfo().Config
	if !directReads(cfg) {
		return nil
	}
	cfg.AllowDirect = false
	_, err = js.UpdateStream(ctx, cfg)
	return err
}

func bucket[T any](kv jetstream.KeyValue, log *slog.Logger) *Bucket[T] {
	return &Bucket[T]{kv: kv, log: log}
}
