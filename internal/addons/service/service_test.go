package service

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/skiff-paas/skiff/internal/addons/account"
	"github.com/skiff-paas/skiff/internal/bus/bustest"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
	"github.com/skiff-paas/skiff/internal/testkit"
)

const node = "n1"

func newStore(t *testing.T) *store.Store {
	t.Helper()
	nc := bustest.Start(t)
	box, err := secret.New(make([]byte, secret.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), nc, box, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// volumeDir is a fresh directory for volumes that the service user can
// reach: t.TempDir's parent is private to its owner.
func volumeDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for p := dir; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, fi.Mode().Perm()|0o001); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "services")
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startHost runs a host on dir until the returned function (or the end
// of the test) stops it.
func startHost(t *testing.T, st *store.Store, cfg Config) func() {
	t.Helper()
	if cfg.Node == "" {
		cfg.Node = node
	}
	cfg.Addr = "127.0.0.1"
	cfg.StopTimeout = 15 * time.Second
	cfg.Logger = testLogger(t)
	h, err := New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	testkit.Eventually(t, 10*time.Second, "the host to be ready", h.Ready)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("Run did not return 30 s after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func seal(t *testing.T, st *store.Store, pw string) []byte {
	t.Helper()
	b, err := st.Seal([]byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func put(t *testing.T, st *store.Store, svc skiff.Service) {
	t.Helper()
	if svc.Node == "" {
		svc.Node = node
	}
	if _, err := st.Services.Put(context.Background(), svc.Key(), svc); err != nil {
		t.Fatal(err)
	}
}

// waitStatus waits for the service's status to satisfy cond and returns
// it.
func waitStatus(t *testing.T, st *store.Store, name string, timeout time.Duration, cond func(skiff.ServiceStatus) bool) skiff.ServiceStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, _, err := st.ServiceStat.Get(context.Background(), name)
		if err == nil && cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("status of %s not as wanted within %s: %+v (err %v)", name, timeout, s, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func isUp(s skiff.ServiceStatus) bool { return s.State == skiff.ServiceUp }

func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, p, ok := strings.Cut(addr, ":")
	port, err := strconv.Atoi(p)
	if !ok || err != nil {
		t.Fatalf("bad address %q", addr)
	}
	return host, port
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	dir := volumeDir(t)
	stop := startHost(t, st, Config{Dir: dir})
	ctx := context.Background()

	const pw = `pa'ss w\rd`
	svc := skiff.Service{Name: "pg-1", Kind: skiff.AddonPostgres, Node: node, Password: seal(t, st, pw), Generation: 1}
	put(t, st, svc)
	up := waitStatus(t, st, "pg-1", 30*time.Second, isUp)
	host, port := splitAddr(t, up.Addr)
	if host != "127.0.0.1" || up.Node != node || up.Generation != 1 {
		t.Fatalf("status %+v", up)
	}

	conn, err := pgConnect(ctx, host, port, []byte(pw))
	if err != nil {
		t.Fatalf("connect with the password: %v", err)
	}
	for setting, want := range map[string]string{
		"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all", "fsync": "on",
		"max_connections": "100", "listen_addresses": "127.0.0.1", "logging_collector": "on",
		"unix_socket_directories": filepath.Join(dir, "pg-1"), "server_encoding": "UTF8",
	} {
		var got string
		if err := conn.QueryRow(ctx, "SHOW "+setting).Scan(&got); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", setting, got, err, want)
		}
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if _, err := pgConnect(ctx, host, port, []byte("wrong")); !isAuthError(err) {
		t.Errorf("connect with a wrong password: %v, want a refusal", err)
	}
	hba, _ := os.ReadFile(filepath.Join(dir, "pg-1", "data", "pg_hba.conf"))
	if strings.Contains(string(hba), "trust") {
		t.Errorf("pg_hba.conf trusts someone:\n%s", hba)
	}
	if _, err := os.Stat(filepath.Join(dir, "pg-1", ".pwfile")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the password file of initdb is left: %v", err)
	}
	checkVolume(t, filepath.Join(dir, "pg-1"))
	kept := func() {
		t.Helper()
		conn, err := pgConnect(ctx, host, port, []byte(pw))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var x int
		if err := conn.QueryRow(ctx, "SELECT x FROM kept").Scan(&x); err != nil || x != 42 {
			t.Fatalf("kept data: %d, %v", x, err)
		}
	}

	// A killed server is started again.
	pidFile := filepath.Join(dir, "pg-1", "data", "postmaster.pid")
	pid := readPidFile(pidFile)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, st, "pg-1", 30*time.Second, func(s skiff.ServiceStatus) bool { return isUp(s) && s.Restarts == 1 })
	if readPidFile(pidFile) == pid {
		t.Fatal("the server was not started again")
	}
	kept()

	// A new generation restarts it.
	pid = readPidFile(pidFile)
	svc.Generation = 2
	put(t, st, svc)
	waitStatus(t, st, "pg-1", 30*time.Second, func(s skiff.ServiceStatus) bool { return isUp(s) && s.Generation == 2 })
	if readPidFile(pidFile) == pid {
		t.Fatal("a new generation did not restart the server")
	}

	// A new password is given to the server.
	const pw2 = "new-password"
	svc.Password = seal(t, st, pw2)
	put(t, st, svc)
	testkit.Eventually(t, 30*time.Second, "postgres to take the new password", func() bool { return pgPing(ctx, host, port, []byte(pw2)) == nil })
	waitStatus(t, st, "pg-1", 10*time.Second, isUp)
	if err := pgPing(ctx, host, port, []byte(pw)); !isAuthError(err) {
		t.Errorf("the old password after a change: %v, want a refusal", err)
	}
	svc.Password = seal(t, st, pw)
	put(t, st, svc)
	testkit.Eventually(t, 30*time.Second, "postgres to take the password", func() bool { return pgPing(ctx, host, port, []byte(pw)) == nil })
	waitStatus(t, st, "pg-1", 10*time.Second, isUp)

	// A new host on the same volumes keeps the address and the data.
	stop()
	if err := pgPing(ctx, host, port, []byte(pw)); err == nil {
		t.Fatal("the server still answers after its host stopped")
	}
	if s, _, err := st.ServiceStat.Get(ctx, "pg-1"); err != nil || s.State != skiff.ServiceFailed {
		t.Fatalf("status after the host stopped: %+v, %v", s, err)
	}
	// A server left running on the volume (the host died and it did not)
	// is stopped before the new host starts its own.
	leftover := startLeftover(t, filepath.Join(dir, "pg-1", "data"))
	testkit.Eventually(t, 10*time.Second, "the leftover server to answer", func() bool { return pgPing(ctx, host, port, []byte(pw)) == nil })
	startHost(t, st, Config{Dir: dir})
	again := waitStatus(t, st, "pg-1", 30*time.Second, func(s skiff.ServiceStatus) bool { return isUp(s) && readPidFile(pidFile) != leftover.pid })
	if again.Addr != up.Addr {
		t.Fatalf("address changed from %s to %s", up.Addr, again.Addr)
	}
	select {
	case <-leftover.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the leftover server still runs")
	}
	kept()

	// A deleted service is stopped and its volume removed.
	if err := st.Services.Delete(ctx, svc.Key()); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "the status record to go", func() bool {
		_, _, err := st.ServiceStat.Get(ctx, "pg-1")
		return errors.Is(err, skiff.ErrNotFound)
	})
	testkit.Eventually(t, 10*time.Second, "the volume to go", func() bool {
		_, err := os.Stat(filepath.Join(dir, "pg-1"))
		return errors.Is(err, os.ErrNotExist)
	})
	if err := pgPing(ctx, host, port, []byte(pw)); err == nil {
		t.Fatal("the server still answers after its service was deleted")
	}
}

type leftover struct {
	pid  int
	done chan struct{}
}

// startLeftover starts a PostgreSQL server on data as the service host
// would, but not as its child.
func startLeftover(t *testing.T, data string) leftover {
	t.Helper()
	a, err := account.Ensure(DefaultUser)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(account.PostgresBin("postgres"), "postgres"), "-D", data)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: a.Cred}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := leftover{pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() { cmd.Wait(); close(l.done) }()
	t.Cleanup(func() { syscall.Kill(-l.pid, syscall.SIGKILL); <-l.done })
	return l
}

// checkVolume checks a volume is the service user's alone.
func checkVolume(t *testing.T, vol string) {
	t.Helper()
	fi, err := os.Stat(vol)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("volume %s is mode %04o, want 0700", vol, fi.Mode().Perm())
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup(DefaultUser)
		if err != nil {
			t.Fatal(err)
		}
		if uid := strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)); uid != u.Uid {
			t.Errorf("volume %s is uid %s's, want %s's (%s)", vol, uid, DefaultUser, u.Uid)
		}
	}
}

func redisAt(addr, user, pw string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Username: user, Password: pw, MaxRetries: -1, DisableIdentity: true})
}

func TestRedis(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	dir := volumeDir(t)
	stop := startHost(t, st, Config{Dir: dir})
	ctx := context.Background()

	const pw = "redis-pw"
	primary := skiff.Service{Name: "redis-1", Kind: skiff.AddonRedis, Password: seal(t, st, pw), Generation: 1,
		MaxMemory: 10 << 20, Eviction: "allkeys-lru"}
	// The replica comes first: it waits for its primary's address.
	replica := skiff.Service{Name: "redis-2", Kind: skiff.AddonRedis, Password: seal(t, st, pw), Generation: 1, ReplicaOf: "redis-1"}
	bare := skiff.Service{Name: "redis-3", Node: node, Kind: skiff.AddonRedis, Password: seal(t, st, pw), Generation: 1, NoPersistence: true}
	put(t, st, replica)
	waitStatus(t, st, "redis-2", 10*time.Second, func(s skiff.ServiceStatus) bool {
		return s.State == skiff.ServiceStarting && strings.Contains(s.Error, "waiting for the primary redis-1")
	})
	put(t, st, primary)
	put(t, st, bare)
	p := waitStatus(t, st, "redis-1", 20*time.Second, isUp)
	r := waitStatus(t, st, "redis-2", 20*time.Second, isUp)
	b := waitStatus(t, st, "redis-3", 20*time.Second, isUp)
	if p.Role != RolePrimary || r.Role != RoleReplica || b.Role != RolePrimary {
		t.Fatalf("roles %q %q %q", p.Role, r.Role, b.Role)
	}
	checkVolume(t, filepath.Join(dir, "redis-1"))

	pc := redisAt(p.Addr, "", pw)
	defer pc.Close()
	if err := pc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET with the password: %v", err)
	}
	for _, bad := range []string{"", "wrong"} {
		c := redisAt(p.Addr, "", bad)
		if err := c.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") && !strings.Contains(err.Error(), "WRONGPASS") {
			t.Errorf("PING with password %q: %v, want a refusal", bad, err)
		}
		c.Close()
	}
	configIs := func(c *redis.Client, key, want string) {
		t.Helper()
		got, err := c.ConfigGet(ctx, key).Result()
		if err != nil || got[key] != want {
			t.Errorf("CONFIG GET %s = %q, %v; want %q", key, got[key], err, want)
		}
	}
	configIs(pc, "maxmemory", strconv.Itoa(10<<20))
	configIs(pc, "maxmemory-policy", "allkeys-lru")
	configIs(pc, "appendonly", "yes")
	if aof, _ := filepath.Glob(filepath.Join(dir, "redis-1", "appendonlydir", "*.aof")); len(aof) == 0 {
		t.Error("no AOF file in the primary's volume")
	}
	bc := redisAt(b.Addr, "", pw)
	defer bc.Close()
	configIs(bc, "appendonly", "no")
	configIs(bc, "save", "")
	configIs(bc, "maxmemory", strconv.Itoa(DefaultMaxMemory))
	configIs(bc, "maxmemory-policy", DefaultEviction)

	// Users the addons role makes last.
	if err := pc.Do(ctx, "ACL", "SETUSER", "app", "on", ">app-pw", "~*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	if err := pc.Do(ctx, "ACL", "SAVE").Err(); err != nil {
		t.Fatalf("ACL SAVE: %v", err)
	}

	// The replica replicates and refuses writes.
	rc := redisAt(r.Addr, "", pw)
	defer rc.Close()
	testkit.Eventually(t, 10*time.Second, "the replica to copy k", func() bool { v, _ := rc.Get(ctx, "k").Result(); return v == "v" })
	if err := rc.Set(ctx, "w", "1", 0).Err(); err == nil || !strings.Contains(err.Error(), "READONLY") {
		t.Errorf("SET on the replica: %v, want READONLY", err)
	}

	// Promotion, in place.
	pidFile := filepath.Join(dir, "redis-2", "redis.pid")
	pid := readPidFile(pidFile)
	replica.ReplicaOf = ""
	put(t, st, replica)
	waitStatus(t, st, "redis-2", 10*time.Second, func(s skiff.ServiceStatus) bool { return isUp(s) && s.Role == RolePrimary })
	if err := rc.Set(ctx, "w", "1", 0).Err(); err != nil {
		t.Errorf("SET on the promoted replica: %v", err)
	}
	if readPidFile(pidFile) != pid {
		t.Error("the promoted replica was restarted")
	}

	// A restart keeps the data and the users saved.
	pid = readPidFile(filepath.Join(dir, "redis-1", "redis.pid"))
	primary.Generation = 2
	put(t, st, primary)
	waitStatus(t, st, "redis-1", 20*time.Second, func(s skiff.ServiceStatus) bool { return isUp(s) && s.Generation == 2 })
	if readPidFile(filepath.Join(dir, "redis-1", "redis.pid")) == pid {
		t.Fatal("a new generation did not restart the server")
	}
	if v, err := pc.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Errorf("GET k after a restart: %q, %v", v, err)
	}
	ac := redisAt(p.Addr, "app", "app-pw")
	defer ac.Close()
	if err := ac.Ping(ctx).Err(); err != nil {
		t.Errorf("the saved user after a restart: %v", err)
	}

	// A service deleted while its host was away is cleaned up when it
	// comes back, and so is a status of this node that no service has.
	stop()
	if err := st.Services.Delete(ctx, bare.Key()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ServiceStat.Put(ctx, "ghost", skiff.ServiceStatus{Name: "ghost", Node: node, State: skiff.ServiceUp}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ServiceStat.Put(ctx, "elsewhere", skiff.ServiceStatus{Name: "elsewhere", Node: "n2", State: skiff.ServiceUp}); err != nil {
		t.Fatal(err)
	}
	startHost(t, st, Config{Dir: dir})
	gone := func(name string) func() bool {
		return func() bool {
			_, _, err := st.ServiceStat.Get(ctx, name)
			return errors.Is(err, skiff.ErrNotFound)
		}
	}
	testkit.Eventually(t, 10*time.Second, "redis-3 to go", gone("redis-3"))
	testkit.Eventually(t, 10*time.Second, "ghost to go", gone("ghost"))
	testkit.Eventually(t, 10*time.Second, "the volume of redis-3 to go", func() bool {
		_, err := os.Stat(filepath.Join(dir, "redis-3"))
		return errors.Is(err, os.ErrNotExist)
	})
	if _, _, err := st.ServiceStat.Get(ctx, "elsewhere"); err != nil {
		t.Errorf("another node's status: %v", err)
	}
	waitStatus(t, st, "redis-1", 20*time.Second, isUp)
}

func TestFailures(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	dir := volumeDir(t)
	startHost(t, st, Config{Dir: dir, PostgresBin: "/nonexistent/bin"})

	// A bad setting: the server's own words say why, and it is tried again.
	svc := skiff.Service{Name: "redis-bad", Kind: skiff.AddonRedis, Password: seal(t, st, "pw"), Eviction: "bogus", Generation: 1}
	put(t, st, svc)
	s := waitStatus(t, st, "redis-bad", 20*time.Second, func(s skiff.ServiceStatus) bool { return s.Restarts >= 2 })
	if s.State != skiff.ServiceFailed || !strings.Contains(s.Error, "maxmemory-policy") || s.Addr == "" {
		t.Errorf("status %+v, want failed, with Redis's complaint about maxmemory-policy", s)
	}
	// Fixed, it comes up at once, at the same address.
	svc.Eviction = ""
	put(t, st, svc)
	if up := waitStatus(t, st, "redis-bad", 10*time.Second, isUp); up.Addr != s.Addr {
		t.Errorf("address changed from %s to %s", s.Addr, up.Addr)
	}

	// No PostgreSQL where the host was told to look.
	put(t, st, skiff.Service{Name: "pg-none", Kind: skiff.AddonPostgres, Password: seal(t, st, "pw"), Generation: 1})
	s = waitStatus(t, st, "pg-none", 20*time.Second, func(s skiff.ServiceStatus) bool { return s.State == skiff.ServiceFailed })
	if !strings.Contains(s.Error, "PostgresBin") {
		t.Errorf("error %q does not say PostgresBin is wrong", s.Error)
	}

	// A password sealed with another key.
	other, _ := secret.New([]byte(strings.Repeat("k", secret.KeySize)))
	put(t, st, skiff.Service{Name: "redis-key", Kind: skiff.AddonRedis, Password: other.Seal([]byte("pw")), Generation: 1})
	s = waitStatus(t, st, "redis-key", 20*time.Second, func(s skiff.ServiceStatus) bool { return s.State == skiff.ServiceFailed })
	if !strings.Contains(s.Error, "password") {
		t.Errorf("error %q does not say the password cannot be opened", s.Error)
	}
}

func TestClassify(t *testing.T) {
	base := skiff.Service{Name: "r", Kind: skiff.AddonRedis, ReplicaOf: "p", Generation: 1, MaxMemory: 1 << 20, CreatedAt: time.Now()}
	with := func(f func(*skiff.Service)) skiff.Service { v := base; f(&v); return v }
	for _, tc := range []struct {
		name   string
		new    skiff.Service
		samePW bool
		want   change
	}{
		{"same", base, true, noChange},
		{"other app fields", with(func(v *skiff.Service) { v.App, v.CreatedAt = "x", time.Time{} }), true, noChange},
		{"promotion", with(func(v *skiff.Service) { v.ReplicaOf = "" }), true, promote},
		{"promotion and a new generation", with(func(v *skiff.Service) { v.ReplicaOf, v.Generation = "", 2 }), true, restart},
		{"promotion and a new password", with(func(v *skiff.Service) { v.ReplicaOf = "" }), false, restart},
		{"new primary", with(func(v *skiff.Service) { v.ReplicaOf = "q" }), true, restart},
		{"generation", with(func(v *skiff.Service) { v.Generation = 2 }), true, restart},
		{"memory", with(func(v *skiff.Service) { v.MaxMemory = 2 << 20 }), true, restart},
		{"eviction", with(func(v *skiff.Service) { v.Eviction = "allkeys-lru" }), true, restart},
		{"persistence", with(func(v *skiff.Service) { v.NoPersistence = true }), true, restart},
		{"password", base, false, restart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(base, tc.new, tc.samePW); got != tc.want {
				t.Errorf("classify = %d, want %d", got, tc.want)
			}
		})
	}
	pg := skiff.Service{Kind: skiff.AddonPostgres, ReplicaOf: "x"}
	if got := classify(pg, skiff.Service{Kind: skiff.AddonPostgres}, true); got != restart {
		t.Errorf("PostgreSQL promotion = %d, want restart", got)
	}
}

func TestWithDefaultUser(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"saved by redis", "user app on #abc ~* +@all\nuser default on sanitize-payload #old ~* &* +@all\n"},
		{"no newline", "user app on #abc ~* +@all"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := string(withDefaultUser([]byte(tc.in), []byte("pw")))
			lines := strings.Split(strings.TrimSpace(out), "\n")
			// sha256("pw")
			const want = "user default on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~* &* +@all"
			if lines[0] != want || strings.Count(out, "user default") != 1 {
				t.Errorf("got\n%s", out)
			}
			if strings.Contains(tc.in, "user app") != strings.Contains(out, "user app on #abc ~* +@all\n") {
				t.Errorf("other users not kept:\n%s", out)
			}
		})
	}
}

func TestRedisQuote(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:     `"plain"`,
		`a "b" \c`:  `"a \"b\" \\c"`,
		"line\nnew": `"line\x0anew"`,
	} {
		if got := redisQuote(in); got != want {
			t.Errorf("redisQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestTailLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	b.WriteString("old run\n--- marker\n")
	from := int64(b.Len())
	for i := range 30 {
		b.WriteString("line " + strconv.Itoa(i) + "\n\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	got := tailLines(path, from, 3)
	if strings.Join(got, "|") != "line 27|line 28|line 29" {
		t.Errorf("tail = %q", got)
	}
	if got := tailLines(path, 0, 100); got[0] != "old run" || len(got) != 31 {
		t.Errorf("whole = %q", got)
	}
	if got := tailLines(path, int64(b.Len()), 3); len(got) != 0 {
		t.Errorf("nothing new = %q", got)
	}
}
