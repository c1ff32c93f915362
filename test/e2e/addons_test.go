package e2e

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const pgBin = "/usr/lib/postgresql/15/bin/"

// sql runs statements with psql against url and returns the output
// (unaligned, tuples only) and psql's error.
func sql(url string, statements ...string) (string, error) {
	args := []string{url, "-X", "-v", "ON_ERROR_STOP=1", "-Atq"}
	for _, s := range statements {
		args = append(args, "-c", s)
	}
	out, err := exec.Command(pgBin+"psql", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func mustSQL(t *testing.T, url string, statements ...string) string {
	t.Helper()
	out, err := sql(url, statements...)
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	return out
}

// backupList is what skiff backups --json says.
type backupList []struct {
	ID       string `json:"id"`
	Addon    string `json:"addon"`
	Kind     string `json:"kind"`
	State    string `json:"state"`
	Error    string `json:"error"`
	Verified string `json:"verified"`
	Note     string `json:"verify_note"`
}

func (s *server) backups(app string) backupList {
	var bs backupList
	if err := json.Unmarshal([]byte(s.ok("backups", "-a", app, "--json")), &bs); err != nil {
		s.t.Fatal(err)
	}
	return bs
}

// dbApp serves what its database says, and migrates it in its release
// phase: one transaction that records the release and runs $EXTRA_SQL.
var dbApp = map[string]string{
	"Procfile": "web: python3 web.py\nrelease: sh migrate.sh\n",
	"migrate.sh": `set -e
` + pgBin + `psql "$DATABASE_URL" -X -1 -v ON_ERROR_STOP=1 \
  -c "CREATE TABLE IF NOT EXISTS migrations(release text)" \
  -c "INSERT INTO migrations VALUES ('$SKIFF_RELEASE')" \
  -c "${EXTRA_SQL:-SELECT 1}"
`,
	"web.py": `import http.server, os, subprocess
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        out = subprocess.run(["` + pgBin + `psql", os.environ["DATABASE_URL"], "-X", "-Atc",
            "SELECT string_agg(release, ',' ORDER BY release) FROM migrations"], capture_output=True, text=True)
        body = ("release=%s migrations=%s err=%s\n" % (os.environ.get("SKIFF_RELEASE"), out.stdout.strip(), out.stderr.strip())).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`,
}

// TestAddonsPostgres: a shared-plan database per app, reachable with its
// URL from psql, from the app and through the platform, closed to other
// apps; a release-phase migration against it; backups captured,
// restored, verified, scheduled, and refused cleanly when the disk is
// full; destroy asks for confirmation and takes a backup first.
func TestAddonsPostgres(t *testing.T) {
	s := startServer(t, "--addons-tick", "1s")
	s.ok("apps", "create", "shop")
	s.ok("apps", "create", "rival")

	out := s.ok("addons", "create", "postgres", "-a", "shop")
	if !strings.Contains(out, "DATABASE_URL") {
		t.Errorf("create says:\n%s", out)
	}
	shopURL := strings.TrimSpace(s.ok("config", "get", "-a", "shop", "DATABASE_URL"))
	mustSQL(t, shopURL, "CREATE TABLE items(id serial PRIMARY KEY, name text)", "INSERT INTO items(name) VALUES ('apple'), ('pear')")

	s.ok("addons", "create", "postgres", "-a", "rival")
	rivalURL := strings.TrimSpace(s.ok("config", "get", "-a", "rival", "DATABASE_URL"))
	if rivalURL == shopURL || rivalURL == "" {
		t.Fatalf("rival's DATABASE_URL %q", rivalURL)
	}
	// rival's user and password, shop's database: refused.
	cross, _ := url.Parse(rivalURL)
	shop, _ := url.Parse(shopURL)
	cross.Path = shop.Path
	if out, err := sql(cross.String(), "SELECT count(*) FROM items"); err == nil || !strings.Contains(out, "permission denied for database") {
		t.Errorf("rival's credentials on shop's database: %v %s", err, out)
	}
	wrong, _ := url.Parse(shopURL)
	wrong.User = url.UserPassword(shop.User.Username(), "not-the-password")
	if out, err := sql(wrong.String(), "SELECT 1"); err == nil || !strings.Contains(out, "password authentication failed") {
		t.Errorf("a wrong password: %v %s", err, out)
	}
	// Through the platform.
	if out := s.ok("pg", "psql", "-a", "shop", "--", "-Atc", "SELECT count(*) FROM items"); strings.TrimSpace(out) != "2" {
		t.Errorf("skiff pg psql says %q", out)
	}

	// The release phase migrates before traffic switches; a failing
	// migration fails its release, and v1 keeps serving.
	s.ok("deploy", app(t, "pyapp", dbApp), "-a", "shop")
	s.waitFor(host("shop"), "release=v")
	if _, body, _ := s.get(host("shop"), "/"); !strings.Contains(body, "migrations=v") {
		t.Fatalf("the app's first answer: %s", body)
	}
	_, body, _ := s.get(host("shop"), "/")
	first := strings.Fields(body)[0] // release=vN
	stop := s.load(1, host("shop"), first)
	s.ok("config", "set", "-a", "shop", "EXTRA_SQL=SELECT * FROM no_such_table")
	eventually(t, 40*time.Second, "the failing migration's release to fail", func() bool {
		var rels []struct{ Status string }
		json.Unmarshal([]byte(s.ok("releases", "-a", "shop", "--json")), &rels)
		return len(rels) > 0 && rels[0].Status == "failed"
	})
	if _, failed, firstErr := stop(); failed != 0 {
		t.Errorf("%d requests failed while the migration failed; first: %s", failed, firstErr)
	}
	if got := mustSQL(t, shopURL, "SELECT count(*) FROM migrations"); got != "1" {
		t.Errorf("the failed migration left rows behind: %s migrations", got)
	}
	s.ok("config", "unset", "-a", "shop", "EXTRA_SQL")

	// Capture, lose a table, restore: the data is back.
	out = s.ok("backups", "capture", "-a", "shop")
	bs := s.backups("shop")
	if len(bs) != 1 || bs[0].State != "done" || bs[0].ID != "b001" {
		t.Fatalf("backups after a capture: %+v\n%s", bs, out)
	}
	mustSQL(t, shopURL, "DROP TABLE items")
	s.fails(2, "--confirm", "backups", "restore", "b001", "-a", "shop")
	s.ok("backups", "restore", "b001", "-a", "shop", "--confirm", "shop")
	if got := mustSQL(t, shopURL, "SELECT string_agg(name, ',' ORDER BY id) FROM items"); got != "apple,pear" {
		t.Errorf("after the restore, items holds %q", got)
	}
	if bs := s.backups("shop"); len(bs) != 2 {
		t.Errorf("a restore takes a backup first; backups: %+v", bs)
	}
	if out := s.ok("backups", "verify", "b001", "-a", "shop"); !strings.Contains(out, "verified") {
		t.Errorf("verify says:\n%s", out)
	}

	// The schedule: the leader takes the day's backup once its time has
	// come, and verifies it.
	at := time.Now().UTC().Add(-time.Minute).Format("15:04")
	s.ok("backups", "schedule", "-a", "shop", "--at", at)
	eventually(t, 60*time.Second, "a scheduled backup, verified", func() bool {
		for _, b := range s.backups("shop") {
			if b.Kind == "scheduled" && b.Verified == "ok" {
				return true
			}
		}
		return false
	})

	// Off-site copies, pulled with a token that may do nothing else.
	token := strings.TrimSpace(s.ok("backups", "token"))
	pulled := t.TempDir()
	as := []string{"--api", "http://" + s.apiAddr, "--token", token}
	out = s.ok(append([]string{"backups", "pull", "--to", pulled}, as...)...)
	var want int
	for _, b := range s.backups("shop") {
		if b.State == "done" {
			want++
		}
	}
	if files, _ := filepath.Glob(filepath.Join(pulled, "shop", "*.dump")); len(files) != want {
		t.Errorf("pulled %d files of %d backups:\n%s", len(files), want, out)
	}
	if out := s.ok(append([]string{"backups", "pull", "--to", pulled}, as...)...); strings.Contains(out, "Fetched") {
		t.Errorf("a second pull fetched again:\n%s", out)
	}
	s.fails(4, "only pull backups", append([]string{"config", "-a", "shop"}, as...)...)

	// A pulled copy comes back: uploaded, verified (which counts it), and
	// restored, here into the other app's database.
	out = s.ok("backups", "upload", filepath.Join(pulled, "shop", "b001.dump"), "-a", "rival")
	if !strings.Contains(out, "Uploaded") {
		t.Errorf("upload says:\n%s", out)
	}
	var up []struct {
		ID   string `json:"id"`
		Kind string `json:"kind"`
	}
	json.Unmarshal([]byte(s.ok("backups", "-a", "rival", "--json")), &up)
	if len(up) != 1 || up[0].Kind != "uploaded" {
		t.Fatalf("rival's backups after the upload: %+v", up)
	}
	if out := s.ok("backups", "verify", up[0].ID, "-a", "rival"); !strings.Contains(out, "2 tables") || !strings.Contains(out, "counted now") {
		t.Errorf("verifying the uploaded backup:\n%s", out)
	}
	s.ok("backups", "restore", up[0].ID, "-a", "rival", "--confirm", "rival")
	if got := mustSQL(t, rivalURL, "SELECT string_agg(name, ',' ORDER BY id) FROM items"); got != "apple,pear" {
		t.Errorf("rival after restoring shop's pulled backup: %q", got)
	}
	s.fails(2, "not a pg_dump-custom backup", "backups", "upload", filepath.Join(s.data, "admin.token"), "-a", "rival")

	// Destroy: confirmed, and after a last backup.
	s.fails(2, "--confirm", "addons", "destroy", "postgres-1", "-a", "rival")
	s.ok("addons", "destroy", "postgres-1", "-a", "rival", "--confirm", "rival")
	if out := s.cli("config", "get", "-a", "rival", "DATABASE_URL"); strings.Contains(out.out, "postgres://") {
		t.Errorf("rival keeps DATABASE_URL after the destroy: %s", out.out)
	}
	if bs := s.backups("rival"); len(bs) != 3 || bs[0].Kind != "before-destroy" {
		t.Errorf("rival's backups after the destroy: %+v", bs)
	}
	if _, err := sql(rivalURL, "SELECT 1"); err == nil {
		t.Errorf("rival's database still answers after the destroy")
	}

	// An app destroyed takes its add-ons and backups with it.
	s.ok("apps", "destroy", "shop", "--confirm", "shop")
	if _, err := sql(shopURL, "SELECT 1"); err == nil {
		t.Errorf("shop's database still answers after the app's destroy")
	}
	s.ok("apps", "create", "shop")
	if bs := s.backups("shop"); len(bs) != 0 {
		t.Errorf("a new app of the old name sees its backups: %+v", bs)
	}
}

// TestAddonsDiskFull: a capture onto a full disk fails and says so; it
// leaves no file behind and no backup marked done, and the backups stored
// before are untouched.
func TestAddonsDiskFull(t *testing.T) {
	small := t.TempDir()
	os.Chmod(small, 0o711)
	if err := syscall.Mount("tmpfs", small, "tmpfs", 0, "size=2m,mode=0711"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(small, syscall.MNT_DETACH) })
	s := startServer(t, "--addons-dir", small)
	s.ok("apps", "create", "shop")
	s.ok("addons", "create", "postgres", "-a", "shop")
	shopURL := strings.TrimSpace(s.ok("config", "get", "-a", "shop", "DATABASE_URL"))
	mustSQL(t, shopURL, "CREATE TABLE items(name text)", "INSERT INTO items VALUES ('apple')")
	s.ok("backups", "capture", "-a", "shop")

	// A full disk: the capture fails and says so; nothing stored is lost.
	mustSQL(t, shopURL, "CREATE TABLE bulk AS SELECT g, md5(g::text) || md5((g*7)::text) AS junk FROM generate_series(1, 200000) g")
	res := s.cli("backups", "capture", "-a", "shop")
	if res.code == 0 || !strings.Contains(res.err, "full") {
		t.Errorf("a capture onto a full disk: exit %d\n%s%s", res.code, res.out, res.err)
	}
	var failed, done int
	for _, b := range s.backups("shop") {
		switch b.State {
		case "failed":
			failed++
		case "done":
			done++
		}
	}
	if failed != 1 || done != 1 {
		t.Errorf("after the full disk: %d failed, %d done backups", failed, done)
	}
	mustSQL(t, shopURL, "DROP TABLE bulk")
	entries, _ := os.ReadDir(small)
	if len(entries) != 0 {
		t.Errorf("files left in the addons dir: %v", entries)
	}

	s.ok("backups", "restore", "b001", "-a", "shop", "--confirm", "shop")
	if got := mustSQL(t, shopURL, "SELECT name FROM items"); got != "apple" {
		t.Errorf("after restoring b001: %q", got)
	}
}

// TestAddonsRedis: a Redis server per app with a password, reachable
// with REDIS_URL and through the platform, refused without the password;
// an RDB backup restores the keys.
func TestAddonsRedis(t *testing.T) {
	s := startServer(t)
	s.ok("apps", "create", "cache")
	s.ok("addons", "create", "redis", "-a", "cache", "--max-memory", "32mb", "--eviction", "allkeys-lru")
	redisURL := strings.TrimSpace(s.ok("config", "get", "-a", "cache", "REDIS_URL"))
	u, err := url.Parse(redisURL)
	if err != nil || u.Scheme != "redis" {
		t.Fatalf("REDIS_URL %q", redisURL)
	}
	cli := func(args ...string) string {
		out, _ := exec.Command("redis-cli", append([]string{"-u", redisURL, "--no-auth-warning"}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	if got := cli("PING"); got != "PONG" {
		t.Fatalf("PING with REDIS_URL: %q", got)
	}
	noauth, _ := exec.Command("redis-cli", "-h", u.Hostname(), "-p", u.Port(), "PING").CombinedOutput()
	if !strings.Contains(string(noauth), "NOAUTH") {
		t.Errorf("PING without the password: %s", noauth)
	}
	if got := cli("CONFIG", "GET", "maxmemory"); !strings.Contains(got, "NOPERM") && !strings.Contains(got, "no permissions") {
		t.Errorf("the app's user may run CONFIG: %s", got)
	}
	cli("SET", "greeting", "hello")
	cli("SET", "counter", "41")
	s.ok("redis", "credentials", "rotate", "-a", "cache")
	if got := cli("PING"); !strings.Contains(got, "WRONGPASS") && !strings.Contains(got, "invalid") {
		t.Errorf("the old password after a rotate: %q", got)
	}
	redisURL = strings.TrimSpace(s.ok("config", "get", "-a", "cache", "REDIS_URL"))
	if out := s.ok("redis", "cli", "-a", "cache", "--", "INCR", "counter"); strings.TrimSpace(out) != "42" {
		t.Errorf("skiff redis cli: %q", out)
	}

	s.ok("backups", "capture", "-a", "cache")
	cli("FLUSHALL")
	s.ok("backups", "restore", "latest", "-a", "cache", "--confirm", "cache")
	if got := cli("GET", "greeting"); got != "hello" {
		t.Errorf("after the restore, greeting = %q", got)
	}
	if out := s.ok("backups", "verify", "b001", "-a", "cache"); !strings.Contains(out, "verified") {
		t.Errorf("verify says:\n%s", out)
	}
	// The server comes back with the platform, at the same address, with
	// its data.
	cli("SET", "late", "write")
	s.stop()
	s.start()
	eventually(t, 30*time.Second, "redis back after a restart", func() bool { return cli("PING") == "PONG" })
	if got := cli("MGET", "greeting", "late"); got != "hello\nwrite" {
		t.Errorf("after a restart: %q", got)
	}
	// Redis persists to its append-only file.
	found, _ := filepath.Glob(filepath.Join(s.data, "volumes", "*", "appendonlydir"))
	if len(found) != 1 {
		t.Errorf("no append-only file in the volumes: %v", found)
	}
}
