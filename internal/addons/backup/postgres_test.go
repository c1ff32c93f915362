package backup

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/testkit"
)

// appRows is what startApp's database holds.
var appRows = map[string]int64{
	"public.users":          25,
	"public.orders":         3000,
	"public.empty":          0,
	"billing.Invoice Lines": 10,
}

// startApp starts a scratch server with a database like an app's: owned
// by a role that is not a superuser, filled by that role. It returns the
// role's URL.
func startApp(t *testing.T, tools Tools) string {
	t.Helper()
	super, stop, err := tools.ScratchPostgres(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	app, err := createDatabase(t.Context(), super, "app")
	if err != nil {
		t.Fatal(err)
	}
	execSQL(t, app, `
		CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL);
		INSERT INTO users (name) SELECT 'user ' || i FROM generate_series(1, 25) i;
		CREATE TABLE orders (id bigserial PRIMARY KEY, user_id int NOT NULL REFERENCES users, note text);
		INSERT INTO orders (user_id, note)
			SELECT 1 + i % 25, md5(i::text) || md5((i * 7)::text) FROM generate_series(1, 3000) i;
		CREATE TABLE empty (x int);
		CREATE SCHEMA billing;
		CREATE TABLE billing."Invoice Lines" (id int, amount numeric);
		INSERT INTO billing."Invoice Lines" SELECT i, i * 1.5 FROM generate_series(1, 10) i;
		CREATE VIEW big_orders AS SELECT * FROM orders WHERE id > 100;`)
	return app
}

// execSQL runs sql on the database at url.
func execSQL(t *testing.T, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// rows counts the rows of the database at url.
func rows(t *testing.T, url string) map[string]int64 {
	t.Helper()
	got, err := countURL(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// capturePostgres captures the database at url into a file.
func capturePostgres(t *testing.T, tools Tools, url string) (string, map[string]int64) {
	t.Helper()
	var buf bytes.Buffer
	counts, err := tools.CapturePostgres(t.Context(), url, &buf)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, t.TempDir(), "dump", buf.Bytes()), counts
}

func TestPostgresCaptureRestore(t *testing.T) {
	t.Parallel()
	tools := testTools(t)
	app := startApp(t, tools)
	dump, counts := capturePostgres(t, tools, app)
	if !maps.Equal(counts, appRows) {
		t.Fatalf("captured %v, want %v", counts, appRows)
	}

	execSQL(t, app, `DROP TABLE orders CASCADE; DELETE FROM users WHERE id > 5; UPDATE users SET name = 'changed';
		CREATE TABLE later (x int); INSERT INTO later VALUES (1)`)
	if err := tools.RestorePostgres(t.Context(), app, dump); err != nil {
		t.Fatal(err)
	}
	got := rows(t, app)
	// A table made after the capture is left alone.
	want := maps.Clone(appRows)
	want["public.later"] = 1
	if !maps.Equal(got, want) {
		t.Errorf("after restore %v, want %v", got, want)
	}
	conn, err := pgx.Connect(t.Context(), app)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var name, note string
	if err := conn.QueryRow(t.Context(), `SELECT u.name, o.note FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = 17`).Scan(&name, &note); err != nil {
		t.Fatal(err)
	}
	if name != "user 18" || len(note) != 64 {
		t.Errorf("order 17 restored as (%q, %q)", name, note)
	}
	var big int64
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM big_orders`).Scan(&big); err != nil || big != 2900 {
		t.Errorf("the view dropped with orders is back with %d rows, %v", big, err)
	}
	// The sequences come back too: a new order does not collide.
	if _, err := conn.Exec(t.Context(), `INSERT INTO orders (user_id) VALUES (1)`); err != nil {
		t.Errorf("insert after restore: %v", err)
	}
}

func TestPostgresBadDumpChangesNothing(t *testing.T) {
	t.Parallel()
	tools := testTools(t)
	app := startApp(t, tools)
	dump, _ := capturePostgres(t, tools, app)
	good, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	execSQL(t, app, `DROP TABLE orders CASCADE; DELETE FROM users WHERE id > 5`)
	changed := rows(t, app)

	dir := t.TempDir()
	for _, tc := range []struct {
		name, file, msg string
	}{
		{"not a dump", writeFile(t, dir, "garbage", []byte("this is not a dump\n")), "not a PostgreSQL dump pg_restore can read"},
		{"flipped", writeFile(t, dir, "flipped", flipped(good)), "rolled back, the database is unchanged"},
		{"truncated", writeFile(t, dir, "truncated", good[:len(good)/2]), "rolled back, the database is unchanged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tools.RestorePostgres(t.Context(), app, tc.file)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("restore: %v, want an error saying %q", err, tc.msg)
			}
			t.Log(err)
			if got := rows(t, app); !maps.Equal(got, changed) {
				t.Errorf("a failed restore changed the database: %v, was %v", got, changed)
			}
		})
	}
}

// The rows are counted in the snapshot pg_dump dumps: rows committed
// between the count and the start of pg_dump are in neither.
func TestCapturePostgresOneSnapshot(t *testing.T) {
	t.Parallel()
	tools := testTools(t)
	app := startApp(t, tools)
	tools.afterCount = func() {
		execSQL(t, app, `INSERT INTO users (name) SELECT 'late' FROM generate_series(1, 100);
			INSERT INTO billing."Invoice Lines" VALUES (99, 1)`)
	}
	dump, counts := capturePostgres(t, tools, app)
	if !maps.Equal(counts, appRows) {
		t.Fatalf("captured %v, want %v", counts, appRows)
	}
	note, err := tools.Verify(t.Context(), skiff.AddonPostgres, dump, counts)
	if err != nil {
		t.Fatal(err)
	}
	if note != "4 tables, 3,035 rows match" {
		t.Errorf("note %q", note)
	}
}

func TestVerifyPostgres(t *testing.T) {
	t.Parallel()
	tools := testTools(t)
	app := startApp(t, tools)
	dump, counts := capturePostgres(t, tools, app)
	good, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fewer := maps.Clone(counts)
	fewer["public.orders"] = 3001
	missing := maps.Clone(counts)
	missing["public.gone"] = 5
	checkVerify(t, tools, skiff.AddonPostgres, "4 tables, 3,035 rows match", []verifyCase{
		{"good", dump, counts, ""},
		{"flipped", writeFile(t, dir, "flipped", flipped(good)), counts, "the backup cannot be restored"},
		{"truncated", writeFile(t, dir, "truncated", good[:len(good)/2]), counts, "the backup cannot be restored"},
		{"not a dump", writeFile(t, dir, "garbage", []byte("PGDMP but not really")), counts, "not a PostgreSQL dump"},
		{"row count", dump, fewer, "public.orders has 3,000 rows, 3,001 captured"},
		{"missing table", dump, missing, "public.gone is missing (5 rows captured)"},
	})
}

func TestCapturePostgresFullDisk(t *testing.T) {
	t.Parallel()
	tools := testTools(t)
	app := startApp(t, tools)
	counts, err := tools.CapturePostgres(t.Context(), app, &fullDisk{})
	checkDiskFull(t, err)
	if counts != nil {
		t.Errorf("a failed capture returned counts %v", counts)
	}
}

// funcWriter calls its func on its first write.
type funcWriter struct {
	once sync.Once
	f    func()
}

func (w *funcWriter) Write(p []byte) (int, error) {
	w.once.Do(w.f)
	return len(p), nil
}

func TestCapturePostgresKeepsPasswordOutOfArgv(t *testing.T) {
	t.Parallel()
	tools := testTools(t)
	app := startApp(t, tools)
	u, _ := url.Parse(app)
	password, _ := u.User.Password()
	var seen []string
	ran := false
	w := &funcWriter{f: func() {
		ran = true
		seen = argvHolding(password)
	}}
	if _, err := tools.CapturePostgres(t.Context(), app, w); err != nil {
		t.Fatal(err)
	}
	if !ran {
		t.Fatal("nothing was written")
	}
	if len(seen) > 0 {
		t.Errorf("the password is in the argv of %q", seen)
	}
	if dumps := argvHolding("app@" + u.Host); len(dumps) > 0 {
		t.Errorf("pg_dump still runs: %q", dumps)
	}
}

func TestCapturePostgresCancel(t *testing.T) {
	t.Parallel()
	tools := testTools(t)
	app := startApp(t, tools)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	u, _ := url.Parse(app)
	dsn := "app@" + u.Host // in pg_dump's argv, unique to this test
	var dumps []string
	w := &funcWriter{f: func() {
		dumps = argvHolding(dsn)
		cancel()
	}}
	start := time.Now()
	_, err := tools.CapturePostgres(ctx, app, w)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("capture with its context canceled: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("capture took %v to give up", d)
	}
	if len(dumps) == 0 {
		t.Fatal("no pg_dump ran")
	}
	testkit.Eventually(t, 5*time.Second, "pg_dump to go", func() bool {
		return len(argvHolding(dsn)) == 0
	})
}

func TestRestorePostgresNeedsAFile(t *testing.T) {
	err := Tools{}.RestorePostgres(t.Context(), "postgres://u:secret@127.0.0.1:1/db", filepath.Join(t.TempDir(), "none"))
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("restore of a file that is not there: %v", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("the error shows the password: %v", err)
	}
}
