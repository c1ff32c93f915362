package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/api"
	"github.com/skiff-paas/skiff/internal/api/apitest"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// startWorld is newWorld with the server's store at hand, logged in.
func startWorld(t *testing.T) (*world, *apitest.Server) {
	t.Helper()
	srv := apitest.Start(t, api.Config{Domain: "apps.test", RouterPort: 80, MaxUpload: 1 << 20})
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("SKIFF_API", "")
	t.Setenv("SKIFF_TOKEN", "")
	t.Setenv("SKIFF_APP", "")
	w := &world{t: t, url: srv.URL, token: srv.Token}
	w.login()
	return w, srv
}

// fakeAddons stands in for the addons role: it takes every job and ends
// it with what result returns. The requests come out of the channel.
func fakeAddons(t *testing.T, nc *nats.Conn, result func(skiff.AddonRequest) skiff.AddonResult) <-chan skiff.AddonRequest {
	t.Helper()
	reqs := make(chan skiff.AddonRequest, 32)
	sub, err := nc.QueueSubscribe(skiff.SubjectAddons, skiff.QueueAddons, func(m *nats.Msg) {
		var req skiff.AddonRequest
		json.Unmarshal(m.Data, &req)
		reqs <- req
		accepted, _ := json.Marshal(skiff.AddonAccepted{Node: "n1"})
		m.Respond(accepted)
		nc.Publish(skiff.AddonOutputSubject(req.ID), []byte("-----> "+req.Op))
		done, _ := json.Marshal(result(req))
		nc.Publish(skiff.AddonDoneSubject(req.ID), done)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	return reqs
}

func took(t *testing.T, reqs <-chan skiff.AddonRequest) skiff.AddonRequest {
	t.Helper()
	select {
	case r := <-reqs:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the addons role got no request")
	}
	return skiff.AddonRequest{}
}

func putAddon(t *testing.T, srv *apitest.Server, ad skiff.Addon) {
	t.Helper()
	if ad.State == "" {
		ad.State = skiff.AddonReady
	}
	ad.Plan = skiff.AddonPlans[ad.Type][0]
	ad.CreatedAt = time.Now().UTC()
	if _, err := srv.Store.Addons.Put(context.Background(), ad.Key(), ad); err != nil {
		t.Fatal(err)
	}
}

func TestToolTargets(t *testing.T) {
	for _, tc := range []struct {
		url       string
		args, env []string
	}{
		{"postgres://u_shop:p%40ss%2Fw@10.0.0.5:5433/shop_db?sslmode=disable", []string{"postgres://u_shop@127.0.0.1:40001/shop_db?sslmode=disable"}, []string{"PGPASSWORD=p@ss/w"}},
		{"postgresql://me@db.internal/x", []string{"postgresql://me@127.0.0.1:40001/x"}, nil},
	} {
		args, env, err := psqlTarget(tc.url, 40001)
		if err != nil || !reflect.DeepEqual(args, tc.args) || !reflect.DeepEqual(env, tc.env) {
			t.Errorf("psqlTarget(%q) = %q %q %v; want %q %q", tc.url, args, env, err, tc.args, tc.env)
		}
	}
	for _, tc := range []struct {
		url       string
		args, env []string
	}{
		{"redis://app:s3cret@10.0.0.6:6380/2", []string{"-h", "127.0.0.1", "-p", "40002", "--user", "app", "-n", "2"}, []string{"REDISCLI_AUTH=s3cret"}},
		{"redis://:pw@10.0.0.6:6380", []string{"-h", "127.0.0.1", "-p", "40002"}, []string{"REDISCLI_AUTH=pw"}},
		{"rediss://app:pw@r.internal:6380/0", []string{"-h", "127.0.0.1", "-p", "40002", "--tls", "--sni", "r.internal", "--user", "app"}, []string{"REDISCLI_AUTH=pw"}},
	} {
		args, env, err := redisTarget(tc.url, 40002)
		if err != nil || !reflect.DeepEqual(args, tc.args) || !reflect.DeepEqual(env, tc.env) {
			t.Errorf("redisTarget(%q) = %q %q %v; want %q %q", tc.url, args, env, err, tc.args, tc.env)
		}
	}
	if _, _, err := psqlTarget("redis://x@y:1", 1); skiff.KindOf(err) != skiff.KindInvalid {
		t.Errorf("psqlTarget of a Redis URL: %v", err)
	}
	if _, _, err := redisTarget("postgres://x@y:1/db", 1); skiff.KindOf(err) != skiff.KindInvalid {
		t.Errorf("redisTarget of a PostgreSQL URL: %v", err)
	}
}

func TestAddonsCommands(t *testing.T) {
	ctx := context.Background()
	w, srv := startWorld(t)
	w.ok("apps", "create", "shop")
	if out := w.ok("addons", "-a", "shop"); !strings.Contains(out, "shop has no add-ons") {
		t.Fatalf("addons without any: %q", out)
	}
	reqs := fakeAddons(t, srv.Store.NC, func(req skiff.AddonRequest) skiff.AddonResult {
		ad := skiff.Addon{Name: req.Addon, App: req.App, State: skiff.AddonReady, Type: skiff.AddonPostgres, Plan: skiff.PlanShared, ConfigVar: "DATABASE_URL"}
		if req.Spec != nil {
			ad = *req.Spec
			ad.Name, ad.ConfigVar = ad.Type+"-1", "REDIS_URL"
		}
		return skiff.AddonResult{Addon: &ad}
	})

	w.fails(ExitUsage, `--max-memory "lots" is not a size`, "addons", "create", "redis", "-a", "shop", "--max-memory", "lots")
	w.fails(ExitUsage, `unknown add-on type "mysql"`, "addons", "create", "mysql", "-a", "shop")
	out := w.ok("addons", "create", "redis", "-a", "shop", "--max-memory", "64mb", "--eviction", "allkeys-lru", "--no-persistence")
	if out != "Created redis-1 (redis, dedicated) for shop: its URL is in REDIS_URL.\n" {
		t.Fatalf("create said %q", out)
	}
	if req := took(t, reqs); req.Op != skiff.AddonOpCreate || req.Spec.MaxMemory != 64<<20 || req.Spec.Eviction != "allkeys-lru" ||
		!req.Spec.NoPersistence || req.Actor != "admin" {
		t.Fatalf("create request %+v, spec %+v", req, req.Spec)
	}

	putAddon(t, srv, skiff.Addon{Name: "postgres-1", App: "shop", Type: "postgres", ConfigVar: "DATABASE_URL", Addr: "10.0.0.1:5432",
		Password: []byte("sealed")})
	putAddon(t, srv, skiff.Addon{Name: "redis-1", App: "shop", Type: "redis", ConfigVar: "REDIS_URL", MaxMemory: 64 << 20})
	srv.Store.UpdateConfig(ctx, "shop", func(v map[string]string) error {
		v["DATABASE_URL"] = "postgres://u:topsecret@10.0.0.1:5432/shop"
		return nil
	})
	list := w.ok("addons", "-a", "shop")
	for _, want := range []string{"NAME", "postgres-1", "redis-1", "DATABASE_URL", "none scheduled"} {
		if !strings.Contains(list, want) {
			t.Fatalf("addons lacks %q:\n%s", want, list)
		}
	}
	var views []skiff.AddonView
	if err := json.Unmarshal([]byte(w.ok("addons", "-a", "shop", "--json")), &views); err != nil || len(views) != 2 ||
		views[0].URL != "postgres://u:topsecret@10.0.0.1:5432/shop" {
		t.Fatalf("addons --json = %+v, %v", views, err)
	}
	info := w.ok("addons", "info", "postgres-1", "-a", "shop")
	if !strings.Contains(info, "postgres://u:*****@10.0.0.1:5432/shop") || strings.Contains(info, "topsecret") || !strings.Contains(info, "=== postgres-1 of shop") {
		t.Fatalf("addons info:\n%s", info)
	}
	w.fails(ExitNotFound, "shop has no add-on named ghost", "addons", "info", "ghost", "-a", "shop")

	w.fails(ExitUsage, "skiff addons destroy postgres-1 -a shop --confirm shop", "addons", "destroy", "postgres-1", "-a", "shop")
	w.fails(ExitUsage, "--confirm shop", "addons", "destroy", "postgres-1", "-a", "shop", "--confirm", "blog")
	if out := w.ok("addons", "destroy", "postgres-1", "-a", "shop", "--confirm", "shop"); out != "Destroyed postgres-1 of shop.\n" {
		t.Fatalf("destroy said %q", out)
	}
	if req := took(t, reqs); req.Op != skiff.AddonOpDestroy || req.Addon != "postgres-1" || req.Confirm != "shop" {
		t.Fatalf("destroy request %+v", req)
	}

	// The app's only PostgreSQL add-on, though it has two add-ons.
	if out := w.ok("pg", "credentials", "rotate", "-a", "shop"); !strings.Contains(out, "Rotated the credentials of postgres-1: DATABASE_URL") {
		t.Fatalf("rotate said %q", out)
	}
	if req := took(t, reqs); req.Op != skiff.AddonOpRotate || req.Addon != "postgres-1" {
		t.Fatalf("rotate request %+v", req)
	}
	w.fails(ExitUsage, "redis-1 is a redis add-on, not postgres", "pg", "credentials", "rotate", "-a", "shop", "redis-1")

	// Schedules need the add-on when there are several.
	w.fails(ExitUsage, "name one of them: postgres-1, redis-1", "backups", "schedule", "-a", "shop", "--at", "02:00")
	w.fails(ExitUsage, "--at HH:MM", "backups", "schedule", "-a", "shop", "redis-1")
	w.fails(ExitUsage, "invalid backup time", "backups", "schedule", "-a", "shop", "redis-1", "--at", "26:00")
	if out := w.ok("backups", "schedule", "-a", "shop", "redis-1", "--at", "3:15"); out != "redis-1 of shop is backed up daily at 03:15 UTC.\n" {
		t.Fatalf("schedule said %q", out)
	}
	if ad, _, _ := srv.Store.Addons.Get(ctx, skiff.AddonKey("shop", "redis-1")); ad.BackupAt != "03:15" {
		t.Fatalf("backup_at = %q", ad.BackupAt)
	}
	w.ok("backups", "unschedule", "-a", "shop", "redis-1")
	if ad, _, _ := srv.Store.Addons.Get(ctx, skiff.AddonKey("shop", "redis-1")); ad.BackupAt != "" {
		t.Fatalf("backup_at after unschedule = %q", ad.BackupAt)
	}
	if out := w.ok("addons", "--help"); !strings.Contains(out, "skiff addons create postgres -a shop") {
		t.Fatalf("addons --help:\n%s", out)
	}
}

// echoServer answers every connection with what it is sent.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				io.Copy(conn, conn)
			}()
		}
	}()
	return l.Addr().String()
}

// skiff pg psql runs psql against a local port tunnelled to the add-on's
// server: here a stand-in psql talks to an echo server through it.
func TestPgPsqlThroughTheTunnel(t *testing.T) {
	if _, err := os.Stat("/bin/bash"); err != nil {
		t.Skip("needs bash for the stand-in psql")
	}
	ctx := context.Background()
	w, srv := startWorld(t)
	w.ok("apps", "create", "shop")

	bin := t.TempDir()
	t.Setenv("PATH", bin)
	w.fails(ExitFailed, "apt-get install postgresql-client", "pg", "psql", "-a", "shop")
	script := `#!/bin/bash
url="$1"; hostport="${url#*@}"; hostport="${hostport%%/*}"; port="${hostport##*:}"
echo "argv: $*"
echo "password: $PGPASSWORD"
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 9
printf 'hello tunnel\n' >&3
IFS= read -r line <&3
echo "echoed: $line"
exit 7
`
	if err := os.WriteFile(filepath.Join(bin, "psql"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	w.fails(ExitNotFound, "shop has no postgres add-on", "pg", "psql", "-a", "shop")
	putAddon(t, srv, skiff.Addon{Name: "postgres-1", App: "shop", Type: "postgres", ConfigVar: "DATABASE_URL", Addr: echoServer(t)})
	w.fails(ExitConflict, "config var DATABASE_URL is not set", "pg", "psql", "-a", "shop")
	srv.Store.UpdateConfig(ctx, "shop", func(v map[string]string) error {
		v["DATABASE_URL"] = "postgres://u_shop:pa%20ss@10.9.9.9:5432/shop_db"
		return nil
	})

	out, errOut, code := run("pg", "psql", "-a", "shop", "--", "-c", "select 1")
	if code != 7 {
		t.Fatalf("exit %d; want psql's 7\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"argv: postgres://u_shop@127.0.0.1:", "/shop_db -c select 1\n", "password: pa ss\n", "echoed: hello tunnel\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("psql's output lacks %q:\n%s%s", want, out, errOut)
		}
	}
	if strings.Contains(out, "argv: postgres://u_shop:") {
		t.Errorf("the password is on psql's command line:\n%s", out)
	}
	w.fails(ExitUsage, "at most one add-on", "pg", "psql", "-a", "shop", "postgres-1", "postgres-2")
}

// backupFile stores a done backup with content as its file.
func backupFile(t *testing.T, srv *apitest.Server, b skiff.Backup, content string) {
	t.Helper()
	ctx := context.Background()
	if b.SHA256 == "" {
		sum := sha256.Sum256([]byte(content))
		b.SHA256 = hex.EncodeToString(sum[:])
	}
	b.Size, b.State = int64(len(content)), skiff.BackupDone
	b.FinishedAt = b.StartedAt.Add(time.Second)
	if _, err := srv.Store.BackupFiles.Put(ctx, jetstream.ObjectMeta{Name: b.Key()}, strings.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Store.Backups.Put(ctx, b.Key(), b); err != nil {
		t.Fatal(err)
	}
}

func TestBackupsCommands(t *testing.T) {
	w, srv := startWorld(t)
	w.ok("apps", "create", "shop")
	putAddon(t, srv, skiff.Addon{Name: "postgres-1", App: "shop", Type: "postgres", ConfigVar: "DATABASE_URL"})
	now := time.Now().UTC()
	backupFile(t, srv, skiff.Backup{ID: "b001", App: "shop", Addon: "postgres-1", Type: "postgres", Format: "pg_dump-custom",
		Kind: skiff.BackupManual, StartedAt: now.Add(-time.Hour), Contents: map[string]int64{"public.orders": 12}}, "PGDMP the dump")
	backupFile(t, srv, skiff.Backup{ID: "b002", App: "shop", Addon: "postgres-1", Type: "postgres", Format: "pg_dump-custom",
		Kind: skiff.BackupManual, StartedAt: now, SHA256: strings.Repeat("a", 64)}, "a damaged file")

	list := w.ok("backups", "-a", "shop")
	if !strings.Contains(list, "ID") || strings.Index(list, "b002") > strings.Index(list, "b001") || !strings.Contains(list, "14 B") {
		t.Fatalf("backups:\n%s", list)
	}
	if info := w.ok("backups", "info", "b001", "-a", "shop"); !strings.Contains(info, "public.orders:") || !strings.Contains(info, "not yet") {
		t.Fatalf("backups info:\n%s", info)
	}

	dir := t.TempDir()
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	os.Chdir(dir)
	if out := w.ok("backups", "download", "b001", "-a", "shop"); !strings.Contains(out, "SHA-256 checked) to shop-b001.dump") {
		t.Fatalf("download said %q", out)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "shop-b001.dump")); err != nil || string(data) != "PGDMP the dump" {
		t.Fatalf("downloaded %q, %v", data, err)
	}
	w.fails(ExitFailed, "does not match its SHA-256", "backups", "download", "b002", "-a", "shop", "-o", "damaged.dump")
	if left, _ := filepath.Glob(filepath.Join(dir, "damaged*")); len(left) != 0 {
		t.Fatalf("a failed download left %v", left)
	}

	reqs := fakeAddons(t, srv.Store.NC, func(req skiff.AddonRequest) skiff.AddonResult {
		b := skiff.Backup{ID: "b003", App: req.App, Addon: req.Addon, State: skiff.BackupDone, Size: 2048}
		if req.Op == skiff.AddonOpVerify {
			b.ID, b.Verified, b.VerifyNote = req.Backup, skiff.BackupVerifyError, "public.orders has 11 rows, 12 when taken"
		}
		return skiff.AddonResult{Backup: &b}
	})
	if out := w.ok("backups", "capture", "-a", "shop"); out != "Backup b003 of postgres-1 done: 2.0 KiB.\n" {
		t.Fatalf("capture said %q", out)
	}
	if req := took(t, reqs); req.Op != skiff.AddonOpCapture || req.Addon != "postgres-1" || req.Kind != skiff.BackupManual {
		t.Fatalf("capture request %+v", req)
	}
	w.fails(ExitUsage, "skiff backups restore latest -a shop --confirm shop", "backups", "restore", "-a", "shop")
	if out := w.ok("backups", "restore", "b001", "-a", "shop", "--confirm", "shop"); out != "Restored shop/b003 into shop.\n" {
		t.Fatalf("restore said %q", out)
	}
	if req := took(t, reqs); req.Op != skiff.AddonOpRestore || req.Backup != "b001" || req.Confirm != "shop" || req.Addon != "postgres-1" {
		t.Fatalf("restore request %+v", req)
	}
	w.fails(ExitFailed, "backup b001 failed verification: public.orders has 11 rows", "backups", "verify", "b001", "-a", "shop")
}

// skiff backups pull, with a read-only token, fetches what is new and
// keeps what it has in its state file.
func TestBackupsPull(t *testing.T) {
	w, srv := startWorld(t)
	w.ok("apps", "create", "shop")
	w.ok("apps", "create", "lab")
	now := time.Now().UTC()
	backupFile(t, srv, skiff.Backup{ID: "b001", App: "shop", Addon: "postgres-1", Type: "postgres", StartedAt: now.Add(-time.Hour)}, "shop one")
	backupFile(t, srv, skiff.Backup{ID: "a001", App: "lab", Addon: "redis-1", Type: "redis", Format: "redis-rdb", StartedAt: now}, "REDIS0011 lab")

	token := strings.TrimSpace(w.ok("backups", "token"))
	if len(token) < 20 || strings.Contains(token, "\n") {
		t.Fatalf("backups token printed %q", token)
	}
	w.fails(ExitUnauthorized, "this token may only pull backups", "apps", "--token", token)

	dir := filepath.Join(t.TempDir(), "copies")
	pull := func() string {
		t.Helper()
		return w.ok("backups", "pull", "--to", dir, "--api", w.url, "--token", token)
	}
	out := pull()
	if !strings.Contains(out, "Fetched shop/b001 (postgres-1, 8 B)") || !strings.Contains(out, "Fetched lab/a001 (redis-1, 13 B)") ||
		strings.Index(out, "shop/b001") > strings.Index(out, "lab/a001") {
		t.Fatalf("first pull said %q", out)
	}
	for file, want := range map[string]string{"shop/b001.dump": "shop one", "lab/a001.rdb": "REDIS0011 lab"} {
		if data, err := os.ReadFile(filepath.Join(dir, file)); err != nil || string(data) != want {
			t.Fatalf("%s = %q, %v", file, data, err)
		}
	}
	state, err := loadPullState(dir)
	if err != nil || len(state.Backups) != 2 || state.Backups["lab/a001"].File != filepath.Join("lab", "a001.rdb") {
		t.Fatalf("state = %+v, %v", state, err)
	}
	if out := pull(); out != "" {
		t.Fatalf("a second pull said %q; want nothing", out)
	}

	// New backups come; a file deleted here is fetched again; a damaged
	// one is left out, and said.
	backupFile(t, srv, skiff.Backup{ID: "b002", App: "shop", Addon: "postgres-1", Type: "postgres", StartedAt: now.Add(time.Minute)}, "shop two")
	backupFile(t, srv, skiff.Backup{ID: "b003", App: "shop", Addon: "postgres-1", Type: "postgres", StartedAt: now.Add(2 * time.Minute),
		SHA256: strings.Repeat("0", 64)}, "shop three, damaged")
	os.Remove(filepath.Join(dir, "lab", "a001.rdb"))
	out, errOut, code := run("backups", "pull", "--to", dir, "--api", w.url, "--token", token)
	if code != ExitFailed || !strings.Contains(out, "Fetched shop/b002") || !strings.Contains(out, "Fetched lab/a001") || strings.Contains(out, "shop/b001") ||
		!strings.Contains(errOut, "shop/b003: the download of shop/b003 does not match its SHA-256") || !strings.Contains(errOut, "1 of 3 new backups could not be fetched") {
		t.Fatalf("third pull: exit %d\n%s%s", code, out, errOut)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "shop", "b003*")); len(left) != 0 {
		t.Fatalf("the damaged backup left %v", left)
	}
	if state, _ := loadPullState(dir); len(state.Backups) != 3 {
		t.Fatalf("state after the third pull: %+v", state)
	}
}

// skiff redis cli, against a real Redis server with an ACL user: the
// password reaches redis-cli by REDISCLI_AUTH.
func TestRedisCLIThroughTheTunnel(t *testing.T) {
	for _, p := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("needs %s", p)
		}
	}
	ctx := context.Background()
	dir := t.TempDir()
	acl := filepath.Join(dir, "users.acl")
	os.WriteFile(acl, []byte("user app on >s3cret ~* &* +@all\nuser default off\n"), 0o600)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	redis := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--aclfile", acl, "--dir", dir)
	if err := redis.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { redis.Process.Kill(); redis.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not start")
		}
	}

	w, srv := startWorld(t)
	w.ok("apps", "create", "shop")
	putAddon(t, srv, skiff.Addon{Name: "redis-1", App: "shop", Type: "redis", ConfigVar: "REDIS_URL", Addr: addr})
	srv.Store.UpdateConfig(ctx, "shop", func(v map[string]string) error {
		v["REDIS_URL"] = "redis://app:s3cret@10.9.9.9:6379"
		return nil
	})
	out := w.ok("redis", "cli", "-a", "shop", "--", "set", "greeting", "hola")
	if strings.TrimSpace(out) != "OK" {
		t.Fatalf("redis-cli set said %q", out)
	}
	if out := w.ok("redis", "cli", "-a", "shop", "redis-1", "--", "acl", "whoami"); strings.TrimSpace(out) != "app" {
		t.Fatalf("redis-cli acl whoami said %q", out)
	}
	if out := w.ok("redis", "cli", "-a", "shop", "--", "get", "greeting"); strings.TrimSpace(out) != "hola" {
		t.Fatalf("redis-cli get said %q", out)
	}
}
