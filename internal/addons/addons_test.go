package addons

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/skiff-paas/skiff/internal/addons/backup"
	"github.com/skiff-paas/skiff/internal/addons/service"
	"github.com/skiff-paas/skiff/internal/bus/bustest"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// rig is the role with real servers: a bus, service hosts for nodes, and
// a Manager taking jobs.
type rig struct {
	t     *testing.T
	st    *store.Store
	m     *Manager
	hosts map[string]context.CancelFunc
	wg    sync.WaitGroup
	beat  sync.Map // node -> bool: heartbeating
}

// reachableDir is a fresh directory the servers' own user can reach:
// t.TempDir's parent is private to its owner.
func reachableDir(t *testing.T) string {
	dir := t.TempDir()
	for p := dir; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func newRig(t *testing.T, nodes ...string) *rig { return newRigWith(t, Config{}, nodes...) }

// newRigWith is newRig with the role configured by cfg.
func newRigWith(t *testing.T, cfg Config, nodes ...string) *rig {
	nc := bustest.Start(t)
	box, _ := secret.New(make([]byte, secret.KeySize))
	st, err := store.Open(context.Background(), nc, box, store.Options{LockTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, st: st, hosts: map[string]context.CancelFunc{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		for _, stop := range r.hosts {
			stop()
		}
		r.wg.Wait()
	})
	for _, n := range nodes {
		r.startHost(n)
	}
	// Heartbeats of the nodes, as their agents would write them.
	r.wg.Go(func() {
		for ctx.Err() == nil {
			for _, n := range nodes {
				if on, _ := r.beat.Load(n); on == true {
					st.Nodes.Put(ctx, n, skiff.Node{Name: n, Roles: []string{skiff.RoleAgent}, Heartbeat: time.Now().UTC()})
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	cfg.Node, cfg.WorkDir, cfg.Tick, cfg.UsageEvery = "n1", filepath.Join(reachableDir(t), "work"), 200*time.Millisecond, time.Second
	r.m, err = New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	r.wg.Go(func() { r.m.Run(ctx) })
	if _, err := st.Apps.Create(ctx, "shop", skiff.App{Name: "shop"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !r.m.Ready() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return r
}

// startHost runs the service host of a node.
func (r *rig) startHost(node string) {
	h, err := service.New(service.Config{Node: node, Addr: "127.0.0.1", Dir: filepath.Join(reachableDir(r.t), "volumes")}, r.st)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	r.hosts[node] = func() { cancel(); <-done }
	r.beat.Store(node, true)
}

// job runs a job as the API would and fails the test if it fails.
func (r *rig) job(req skiff.AddonRequest) skiff.AddonResult {
	r.t.Helper()
	res, err := r.try(req)
	if err != nil || res.Error != "" {
		r.t.Fatalf("%s %s: %v %s (%s)", req.Op, req.Addon, err, res.Error, res.Hint)
	}
	return res
}

func (r *rig) try(req skiff.AddonRequest) (skiff.AddonResult, error) {
	req.ID = randomID(12)
	req.App = "shop"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return r.st.AddonJob(ctx, req, func(line string) { r.t.Log(line) })
}

func (r *rig) config(key string) string {
	vars, _, err := r.st.Config(context.Background(), "shop")
	if err != nil {
		r.t.Fatal(err)
	}
	return vars[key]
}

func query(t *testing.T, u, q string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var out string
	err = conn.QueryRow(ctx, q).Scan(&out)
	return out, err
}

// TestDedicatedPostgres: a server of the app's own; the app's user owns
// its database and is no superuser; rotating the credentials refuses the
// old password and puts the new one in the config.
func TestDedicatedPostgres(t *testing.T) {
	r := newRig(t, "n1")
	res := r.job(skiff.AddonRequest{Op: skiff.AddonOpCreate, Spec: &skiff.Addon{Type: skiff.AddonPostgres, Plan: skiff.PlanDedicated}})
	if res.Addon == nil || res.Addon.State != skiff.AddonReady || res.Addon.Service == skiff.SharedPostgres {
		t.Fatalf("created %+v", res.Addon)
	}
	old := r.config("DATABASE_URL")
	if super, err := query(t, old, "SELECT rolsuper::text FROM pg_roles WHERE rolname = current_user"); err != nil || super != "false" {
		t.Errorf("the app's user is a superuser: %q %v", super, err)
	}
	r.job(skiff.AddonRequest{Op: skiff.AddonOpRotate, Addon: "postgres-1"})
	fresh := r.config("DATABASE_URL")
	if fresh == old {
		t.Fatal("rotate left DATABASE_URL as it was")
	}
	if _, err := query(t, old, "SELECT 'x'"); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("the old password still works: %v", err)
	}
	if got, err := query(t, fresh, "SELECT 'x'"); err != nil || got != "x" {
		t.Errorf("the new password: %q %v", got, err)
	}

	// Usage is measured by the leader within its first tick.
	deadline := time.Now().Add(10 * time.Second)
	for {
		a, _, _ := r.st.Addons.Get(context.Background(), skiff.AddonKey("shop", "postgres-1"))
		if a.Usage != nil && a.Usage.Bytes > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no usage measured: %+v", a.Usage)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSharedOnAnAdminsServer: with an admin URL in the config, the
// shared plan's databases are made on that server, and apps cannot reach
// each other's.
func TestSharedOnAnAdminsServer(t *testing.T) {
	admin, stop, err := backup.Tools{}.ScratchPostgres(context.Background(), reachableDir(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	r := newRigWith(t, Config{PostgresURL: admin}, "n1")
	r.job(skiff.AddonRequest{Op: skiff.AddonOpCreate, Spec: &skiff.Addon{Type: skiff.AddonPostgres, Name: "main"}})
	r.job(skiff.AddonRequest{Op: skiff.AddonOpCreate, Spec: &skiff.Addon{Type: skiff.AddonPostgres, Name: "other"}})
	first, second := r.config("DATABASE_URL"), r.config("POSTGRES_2_URL")
	au, _ := url.Parse(admin)
	fu, _ := url.Parse(first)
	if fu.Host != au.Host {
		t.Errorf("DATABASE_URL %s is not on the admin's server %s", first, au.Host)
	}
	if got, err := query(t, first, "SELECT current_database()"); err != nil || "/"+got != fu.Path {
		t.Errorf("the first database: %q %v", got, err)
	}
	su, _ := url.Parse(second)
	su.Path = fu.Path
	if _, err := query(t, su.String(), "SELECT 1::text"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("the second add-on's user on the first's database: %v", err)
	}
	if services, _ := r.st.Services.Values(context.Background(), ""); len(services) != 0 {
		t.Errorf("the platform started servers of its own: %+v", services)
	}
}

// TestVerifyDetectsCorruption: a backup whose stored bytes changed is
// found damaged by its checksum; one damaged before it was stored (its
// checksum taken over the bad bytes) is found by restoring it; both are
// recorded as failed verifications and raise events.
func TestVerifyDetectsCorruption(t *testing.T) {
	r := newRig(t, "n1")
	r.job(skiff.AddonRequest{Op: skiff.AddonOpCreate, Spec: &skiff.Addon{Type: skiff.AddonPostgres}})
	u := r.config("DATABASE_URL")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE items AS SELECT g AS id, md5(g::text) AS name FROM generate_series(1, 5000) g"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	events, err := r.st.NC.SubscribeSync(skiff.EventSubject("shop", skiff.EventBackupVerifyFail))
	if err != nil {
		t.Fatal(err)
	}

	b := *r.job(skiff.AddonRequest{Op: skiff.AddonOpCapture, Addon: "postgres-1"}).Backup
	if b.Contents["public.items"] != 5000 {
		t.Errorf("the backup holds %v", b.Contents)
	}
	if v := r.job(skiff.AddonRequest{Op: skiff.AddonOpVerify, Backup: b.ID}).Backup; v.Verified != skiff.BackupVerifyOK {
		t.Fatalf("a good backup: %s %s", v.Verified, v.VerifyNote)
	}

	// Damaged in store: the checksum no longer matches.
	data := r.object(b.Key())
	bad := bytes.Clone(data)
	for i := len(bad) / 2; i < len(bad)/2+64; i++ {
		bad[i] ^= 0xff
	}
	r.putObject(b.Key(), bad)
	v := r.job(skiff.AddonRequest{Op: skiff.AddonOpVerify, Backup: b.ID}).Backup
	if v.Verified != skiff.BackupVerifyError || !strings.Contains(v.VerifyNote, "damaged") {
		t.Errorf("a backup damaged in store: %s %q", v.Verified, v.VerifyNote)
	}
	if _, err := events.NextMsg(5 * time.Second); err != nil {
		t.Errorf("no %s event: %v", skiff.EventBackupVerifyFail, err)
	}

	// Damaged before it was stored: the checksum is of the bad bytes.
	_, _, err = r.st.Backups.Update(ctx, b.Key(), func(cur *skiff.Backup) error {
		cur.SHA256 = sha(bad)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	v = r.job(skiff.AddonRequest{Op: skiff.AddonOpVerify, Backup: b.ID}).Backup
	if v.Verified != skiff.BackupVerifyError || strings.Contains(v.VerifyNote, "damaged: its stored bytes") {
		t.Errorf("a backup damaged before it was stored: %s %q", v.Verified, v.VerifyNote)
	}
	stored, _, _ := r.st.Backups.Get(ctx, b.Key())
	if stored.Verified != skiff.BackupVerifyError || stored.VerifiedAt.IsZero() {
		t.Errorf("the record says %s at %v", stored.Verified, stored.VerifiedAt)
	}

	// A restore of the damaged backup is refused before anything changes.
	res, err := r.try(skiff.AddonRequest{Op: skiff.AddonOpRestore, Addon: "postgres-1", Backup: b.ID, Confirm: "shop"})
	if err != nil || res.Error == "" {
		t.Errorf("restoring a damaged backup: %v %+v", err, res)
	}
	if got, err := query(t, u, "SELECT count(*)::text FROM items"); err != nil || got != "5000" {
		t.Errorf("after the refused restore: %s %v", got, err)
	}
	// And a Redis backup is not restored into PostgreSQL.
	r.job(skiff.AddonRequest{Op: skiff.AddonOpCreate, Spec: &skiff.Addon{Type: skiff.AddonRedis}})
	rb := r.job(skiff.AddonRequest{Op: skiff.AddonOpCapture, Addon: "redis-1"}).Backup
	res, _ = r.try(skiff.AddonRequest{Op: skiff.AddonOpRestore, Addon: "postgres-1", Backup: rb.ID, Confirm: "shop"})
	if !strings.Contains(res.Error, "is of a redis add-on") {
		t.Errorf("a redis backup into postgres: %+v", res)
	}
}

func (r *rig) object(key string) []byte {
	data, err := r.st.BackupFiles.GetBytes(context.Background(), key)
	if err != nil {
		r.t.Fatal(err)
	}
	return data
}

func (r *rig) putObject(key string, data []byte) {
	if _, err := r.st.BackupFiles.PutBytes(context.Background(), key, data); err != nil {
		r.t.Fatal(err)
	}
}

// TestRedisFailover: an HA Redis add-on has its replica on another node;
// when the primary's node dies the replica is promoted, the app's
// REDIS_URL names it, and the data and the app's user are there.
func TestRedisFailover(t *testing.T) {
	r := newRig(t, "n1", "n2")
	res := r.job(skiff.AddonRequest{Op: skiff.AddonOpCreate, Spec: &skiff.Addon{Type: skiff.AddonRedis, HA: true}})
	a := *res.Addon
	if a.Replica == "" {
		t.Fatalf("no replica: %+v", a)
	}
	ctx := context.Background()
	primary, _ := r.m.service(ctx, a.Service)
	replica, _ := r.m.service(ctx, a.Replica)
	if primary.Node == replica.Node {
		t.Fatalf("primary and replica both on %s", primary.Node)
	}
	before := r.config("REDIS_URL")
	opt, _ := redis.ParseURL(before)
	c := redis.NewClient(opt)
	if err := c.Set(ctx, "greeting", "hello", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	time.Sleep(500 * time.Millisecond) // replication is asynchronous

	// The primary's node dies: its host stops, the scheduler declares it.
	r.beat.Store(primary.Node, false)
	r.hosts[primary.Node]()
	if _, _, err := r.st.Nodes.Update(ctx, primary.Node, func(n *skiff.Node) error {
		n.State = skiff.NodeDead
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for r.config("REDIS_URL") == before {
		if time.Now().After(deadline) {
			t.Fatal("REDIS_URL still names the dead primary")
		}
		time.Sleep(100 * time.Millisecond)
	}
	after := r.config("REDIS_URL")
	ub, _ := url.Parse(before)
	ua, _ := url.Parse(after)
	if ua.Host == ub.Host || ua.User.String() != ub.User.String() {
		t.Errorf("REDIS_URL %s -> %s", before, after)
	}
	opt, _ = redis.ParseURL(after)
	c = redis.NewClient(opt)
	defer c.Close()
	if got, err := c.Get(ctx, "greeting").Result(); err != nil || got != "hello" {
		t.Errorf("on the promoted replica: %q %v", got, err)
	}
	if err := c.Set(ctx, "after", "failover", 0).Err(); err != nil {
		t.Errorf("the promoted replica takes no writes: %v", err)
	}
	cur, _, _ := r.st.Addons.Get(ctx, a.Key())
	if cur.Service != replica.Name || cur.Replica != "" {
		t.Errorf("after the failover: service %s replica %s", cur.Service, cur.Replica)
	}
	var ev skiff.Event
	evs, _ := r.st.JS.OrderedConsumer(ctx, skiff.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{skiff.EventSubject("shop", skiff.EventAddonFailover)}})
	if msg, err := evs.Next(jetstream.FetchMaxWait(5 * time.Second)); err != nil {
		t.Errorf("no failover event: %v", err)
	} else if json.Unmarshal(msg.Data(), &ev); !strings.Contains(ev.Message, "promoted") {
		t.Errorf("failover event: %+v", ev)
	}
}

func sha(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
