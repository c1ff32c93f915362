package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/skiff-paas/skiff/internal/addons/account"
	"github.com/skiff-paas/skiff/internal/secret"
)

// CapturePostgres writes a pg_dump custom-format dump of the database at
// url to w and returns the rows of every table it holds ("schema.table" ->
// count). The rows are counted in the snapshot pg_dump dumps: a REPEATABLE
// READ transaction exports its snapshot, counts, and stays open (holding
// the tables' ACCESS SHARE locks) until pg_dump has finished with it.
//
// Tables the user cannot read are not counted (and make pg_dump fail).
// An error means the dump in w is incomplete: a full disk says so.
func (t Tools) CapturePostgres(ctx context.Context, url string, w io.Writer) (map[string]int64, error) {
	t = t.withDefaults()
	if err := t.needPostgres(); err != nil {
		return nil, err
	}
	dsn, password, err := splitPassword(url)
	if err != nil {
		return nil, fmt.Errorf("capture postgres: %w", err)
	}
	conn, err := connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("capture postgres: %w", err)
	}
	defer closeConn(conn)
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("capture postgres: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The transaction idles while pg_dump works; a role's timeout must not
	// end it before pg_dump has imported the snapshot.
	if _, err := tx.Exec(ctx, "SET LOCAL idle_in_transaction_session_timeout = 0"); err != nil {
		return nil, fmt.Errorf("capture postgres: %w", err)
	}
	var snapshot string
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&snapshot); err != nil {
		return nil, fmt.Errorf("capture postgres: export snapshot: %w", err)
	}
	rows, err := countRows(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("capture postgres: %w", err)
	}
	if t.afterCount != nil {
		t.afterCount()
	}
	args := []string{"--format=custom", "--no-password", "--snapshot=" + snapshot, "--dbname=" + dsn}
	if err := t.dump(ctx, t.pg("pg_dump"), args, pgEnv(password), w); err != nil {
		return nil, fmt.Errorf("capture postgres: %w", err)
	}
	return rows, nil
}

// RestorePostgres replaces the contents of the database at url with the
// dump in file, in one transaction: if anything fails, the database is
// left as it was. Objects of the database that are not in the dump (a
// table created after it was taken) are left alone. The dump is restored
// without its owners and privileges, so everything restored belongs to
// the user of url. A file pg_restore cannot read is reported before the
// database is touched.
func (t Tools) RestorePostgres(ctx context.Context, url, file string) error {
	t = t.withDefaults()
	if err := t.needPostgres(); err != nil {
		return err
	}
	if err := t.checkDump(ctx, file); err != nil {
		return fmt.Errorf("restore postgres: %w", err)
	}
	if err := t.restorePostgres(ctx, url, file); err != nil {
		return fmt.Errorf("restore postgres: rolled back, the database is unchanged: %w", err)
	}
	return nil
}

// restorePostgres runs pg_restore; see RestorePostgres.
func (t Tools) restorePostgres(ctx context.Context, url, file string) error {
	dsn, password, err := splitPassword(url)
	if err != nil {
		return err
	}
	args := []string{"--clean", "--if-exists", "--no-owner", "--no-acl", "--single-transaction",
		"--exit-on-error", "--no-password", "--dbname=" + dsn, file}
	cmd := t.command(ctx, t.pg("pg_restore"), args, pgEnv(password))
	out := &tail{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return runErr("pg_restore", err, out)
	}
	return nil
}

// checkDump reports why file is not a dump pg_restore can read. It reads
// the table of contents only: damage further on shows when restoring.
func (t Tools) checkDump(ctx context.Context, file string) error {
	if _, err := os.Stat(file); err != nil {
		return err
	}
	cmd := t.command(ctx, t.pg("pg_restore"), []string{"--list", file}, pgEnv(""))
	out := &tail{}
	cmd.Stdout, cmd.Stderr = io.Discard, out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s is not a PostgreSQL dump pg_restore can read: %w", file, runErr("pg_restore --list", err, out))
	}
	return nil
}

// ScratchPostgres starts a PostgreSQL server for the purpose, in a
// directory of its own under dir (TempDir when empty), listening on a free
// loopback port. The URL is the superuser's, with a random password and
// scram authentication, to the "postgres" database. The server stops when
// ctx ends or stop is called; stop also removes its files and is safe to
// call more than once. The server runs with fsync off: it is for data
// that can be lost.
//
// When the process is root the server runs as Tools.User, who must be able
// to reach dir: t.TempDir() of a test is not reachable (mode 0700), /tmp is.
func (t Tools) ScratchPostgres(ctx context.Context, dir string) (url string, stop func(), err error) {
	t = t.withDefaults()
	if err := t.needPostgres(); err != nil {
		return "", nil, err
	}
	a, err := t.account()
	if err != nil {
		return "", nil, fmt.Errorf("scratch postgres: %w", err)
	}
	root, err := t.scratchDir(dir, "skiff-postgres-*", a)
	if err != nil {
		return "", nil, fmt.Errorf("scratch postgres: %w", err)
	}
	s, err := t.startPostgres(ctx, root, a)
	if err != nil {
		os.RemoveAll(root)
		return "", nil, fmt.Errorf("scratch postgres: %w", err)
	}
	return s.url, s.close, nil
}

// scratchEnv is the environment of scratch servers.
var scratchEnv = []string{"LC_ALL=C", "TZ=UTC", "PATH=/usr/bin:/bin"}

func (t Tools) startPostgres(ctx context.Context, root string, a account.Account) (*scratch, error) {
	password := secret.Token(16)
	pwfile := filepath.Join(root, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return nil, diskFull(err, root)
	}
	if err := a.Chown(pwfile); err != nil {
		return nil, err
	}
	data := filepath.Join(root, "data")
	out := &tail{}
	initdb := t.command(ctx, t.pg("initdb"), []string{"--pgdata=" + data, "--username=postgres",
		"--auth=scram-sha-256", "--pwfile=" + pwfile, "--no-sync", "--encoding=UTF8", "--locale=C",
		"--no-instructions"}, scratchEnv)
	runAs(initdb, root, a)
	initdb.Stdout, initdb.Stderr = out, out
	err := initdb.Run()
	os.Remove(pwfile)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case outOfSpace(out, root):
			return nil, noSpace(filepath.Dir(root))
		}
		return nil, runErr("initdb", err, out)
	}
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		out := &tail{}
		cmd := t.command(ctx, t.pg("postgres"), []string{"-D", data, "-p", strconv.Itoa(port),
			"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=20", "-c", "shared_buffers=32MB", "-c", "logging_collector=off",
		}, scratchEnv)
		runAs(cmd, root, a)
		// Immediate shutdown: the postmaster takes its children with it.
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
		p, err := start(cmd, out)
		if err != nil {
			return nil, err
		}
		s := &scratch{root: root, proc: p, sig: syscall.SIGQUIT,
			url: fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable", password, port)}
		err = waitReady(ctx, p, "postgres", func(ctx context.Context) error {
			conn, err := pgx.Connect(ctx, s.url)
			if err == nil {
				closeConn(conn)
			}
			return err
		})
		if err == nil {
			return s, nil
		}
		s.halt()
		switch {
		case out.contains("Address already in use") && attempt < 3:
			continue
		case out.contains(enospcText):
			return nil, noSpace(filepath.Dir(root))
		}
		return nil, err
	}
}

// runAs makes cmd run as a, in dir, in a process group of its own (so
// that a terminal's ^C reaches us, not it).
func runAs(cmd *exec.Cmd, dir string, a account.Account) {
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: a.Cred}
}

// createDatabase makes a role that owns a database of the same name, both
// called name, on the server whose superuser's URL is super, the way an
// app's database is made, and returns the role's URL to it.
func createDatabase(ctx context.Context, super, name string) (string, error) {
	conn, err := connect(ctx, super)
	if err != nil {
		return "", err
	}
	defer closeConn(conn)
	password := secret.Token(16)
	ident := pgx.Identifier{name}.Sanitize()
	for _, q := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", ident, password),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", ident, ident),
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return "", fmt.Errorf("create database %s: %w", name, err)
		}
	}
	u, err := url.Parse(super)
	if err != nil {
		return "", err
	}
	u.User = url.UserPassword(name, password)
	u.Path = "/" + name
	return u.String(), nil
}

// countRows counts the rows of every ordinary table the user of tx can
// read, outside the system schemas, as "schema.table" -> rows.
func countRows(ctx context.Context, tx pgx.Tx) (map[string]int64, error) {
	// Schemas named pg_* are the system's: pg_catalog, pg_toast, pg_temp_N.
	rows, err := tx.Query(ctx, `SELECT n.nspname, c.relname
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
			AND has_table_privilege(c.oid, 'SELECT')
		ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var t [2]string
		err := r.Scan(&t[0], &t[1])
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	counts := make(map[string]int64, len(tables))
	if len(tables) == 0 {
		return counts, nil
	}
	b := &pgx.Batch{}
	for _, t := range tables {
		b.Queue("SELECT count(*) FROM " + pgx.Identifier{t[0], t[1]}.Sanitize())
	}
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	for _, t := range tables {
		var n int64
		if err := br.QueryRow().Scan(&n); err != nil {
			return nil, fmt.Errorf("count rows of %s.%s: %w", t[0], t[1], err)
		}
		counts[t[0]+"."+t[1]] = n
	}
	return counts, br.Close()
}

// countURL counts the rows of the database at url, as countRows does.
func countURL(ctx context.Context, url string) (map[string]int64, error) {
	conn, err := connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer closeConn(conn)
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	return countRows(ctx, tx)
}

// connect opens a connection to the database at url.
func connect(ctx context.Context, url string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// pgx's parse errors quote the URL, password and all.
		return nil, errors.New("the database URL is not valid")
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "skiff-backup"
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redact(url), err)
	}
	return conn, nil
}

// closeConn closes conn, not waiting long for a server that is gone.
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn.Close(ctx)
}

// splitPassword is a PostgreSQL URL without its password, for argv, and
// the password, for PGPASSWORD.
func splitPassword(raw string) (dsn, password string, err error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", "", errors.New("the database URL is not a postgres:// URL")
	}
	if u.User != nil {
		password, _ = u.User.Password()
		u.User = url.User(u.User.Username())
	}
	q := u.Query()
	if p := q.Get("password"); p != "" {
		password = p
		q.Del("password")
		u.RawQuery = q.Encode()
	}
	return u.String(), password, nil
}

// redact is url without its password, for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Redacted()
}

// pgEnv is the environment of the PostgreSQL client programs: none of
// ours (no PG* variables to surprise them), and the password.
func pgEnv(password string) []string {
	env := []string{"LC_ALL=C", "PGCONNECT_TIMEOUT=30", "PGAPPNAME=skiff-backup"}
	if password != "" {
		env = append(env, "PGPASSWORD="+password)
	}
	return env
}
