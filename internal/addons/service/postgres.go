package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Superuser is the PostgreSQL superuser of a service; its password is the
// service's.
const Superuser = "skiff"

// initdbTimeout bounds the creation of a data directory.
const initdbTimeout = 5 * time.Minute

// postgres runs a PostgreSQL server on the volume's data directory
// (Dir/NAME/data), made by initdb on the first start. The platform's
// settings are in data/skiff.conf, included last by postgresql.conf, and
// pg_hba.conf; both are rewritten on every start.
type postgres struct{}

func (postgres) stopSignal() syscall.Signal { return syscall.SIGINT } // fast shutdown
func (postgres) pidFile(dir string) string  { return filepath.Join(dir, "data", "postmaster.pid") }
func (postgres) command() string            { return "postgres" }

func (postgres) prepare(ctx context.Context, s *server, pw []byte, out *os.File) ([]string, error) {
	bin := s.h.cfg.PostgresBin
	if bin == "" {
		return nil, fmt.Errorf("PostgreSQL is not installed on node %s: install it (apt-get install postgresql) or set the service host's PostgresBin", s.h.cfg.Node)
	}
	server := filepath.Join(bin, "postgres")
	major, err := postgresMajor(ctx, server)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(s.dir, "data")
	have, err := os.ReadFile(filepath.Join(data, "PG_VERSION"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		if _, err := os.Stat(data); err == nil {
			return nil, fmt.Errorf("%s is not a PostgreSQL data directory (it has no PG_VERSION): move it away to start afresh", data)
		}
		if err := initdb(ctx, s, bin, data, pw, out); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("read the data's version: %w", err)
	case strings.TrimSpace(string(have)) != major:
		v := strings.TrimSpace(string(have))
		return nil, fmt.Errorf("the data in %s is PostgreSQL %s's and the server is PostgreSQL %s: upgrade the data with pg_upgrade, or set the host's PostgresBin to PostgreSQL %s's bin directory", data, v, major, v)
	}

	if err := includeSkiffConf(filepath.Join(data, "postgresql.conf")); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(data, "skiff.conf"), []byte(postgresConf(s.h.cfg.Addr, s.port, s.dir)), 0o600, s.h.acct.Chown); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(data, "pg_hba.conf"), []byte(pgHBA), 0o600, s.h.acct.Chown); err != nil {
		return nil, err
	}
	return []string{server, "-D", data}, nil
}

// postgresMajor is the major version of the server binary.
func postgresMajor(ctx context.Context, server string) (string, error) {
	out, err := exec.CommandContext(ctx, server, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("run %s --version: %w (is PostgresBin right?)", server, err)
	}
	// postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return "", fmt.Errorf("%s --version said %q: not a PostgreSQL server", server, out)
	}
	major, _, _ := strings.Cut(f[2], ".")
	return major, nil
}

// initdb makes the data directory, with the superuser and its password,
// in a directory of its own renamed into place once whole: one that a
// crash cut short is made again.
func initdb(ctx context.Context, s *server, bin, data string, pw []byte, out *os.File) error {
	tmp := data + ".init"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	pwfile := filepath.Join(s.dir, ".pwfile")
	if err := writeFile(pwfile, append(append([]byte{}, pw...), '\n'), 0o600, s.h.acct.Chown); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	defer os.Remove(pwfile)
	fmt.Fprintf(out, "--- skiff runs initdb\n")
	err := s.runTo(ctx, initdbTimeout, []string{filepath.Join(bin, "initdb"), "-D", tmp, "-U", Superuser, "--pwfile=" + pwfile,
		"--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"}, out)
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("initdb failed (is the disk full? the volume is %s): %w", s.dir, err)
	}
	if err := s.recordPassword(pw); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, data); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	return nil
}

// includeLine makes postgresql.conf read the platform's settings last, so
// that they win over the ones above it.
const includeLine = "include = 'skiff.conf'"

func includeSkiffConf(path string) error {
	conf, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read postgresql.conf: %w", err)
	}
	for line := range strings.Lines(string(conf)) {
		if strings.TrimSpace(line) == includeLine {
			return nil
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("add the platform's settings to postgresql.conf: %w", err)
	}
	_, err = fmt.Fprintf(f, "\n# The platform's settings, rewritten by Skiff's service host on every start.\n%s\n", includeLine)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("add the platform's settings to postgresql.conf: %w", err)
	}
	return nil
}

// postgresConf is the server's settings that the platform owns.
func postgresConf(addr string, port int, dir string) string {
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	return fmt.Sprintf(`# Written by Skiff's service host on every start of the server: edits are lost.
listen_addresses = %s
port = %d
unix_socket_directories = %s
unix_socket_permissions = 0700
max_connections = 100
password_encryption = scram-sha-256
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
fsync = on
full_page_writes = on
logging_collector = on
log_directory = %s
log_filename = 'postgresql-%%Y%%m%%d-%%H%%M%%S.log'
log_file_mode = 0600
log_rotation_size = 10MB
log_rotation_age = 1d
log_truncate_on_rotation = off
`, q(addr), port, q(dir), q(filepath.Join(dir, "log")))
}

// pgHBA lets every client in with a password, never without.
const pgHBA = `# Written by Skiff's service host on every start of the server: edits are lost.
# TYPE  DATABASE  USER  ADDRESS    METHOD
local   all       all              scram-sha-256
host    all       all   0.0.0.0/0  scram-sha-256
host    all       all   ::/0       scram-sha-256
`

func (postgres) ready(ctx context.Context, s *server, pw []byte) (string, error) {
	addr := s.h.cfg.Addr
	err := pgPing(ctx, addr, s.port, pw)
	if !isAuthError(err) {
		return "", err
	}
	// The record's password may have changed since the server took one:
	// give the server the new one, logged in with the old.
	if old := s.appliedPassword(); old != nil && !bytes.Equal(old, pw) {
		if err := pgSetPassword(ctx, addr, s.port, old, pw); err != nil {
			return "", refused("PostgreSQL refuses the superuser %s's password, and changing it from the previous one failed: %v", Superuser, err)
		}
		if err := s.recordPassword(pw); err != nil {
			return "", err
		}
		s.log.Info("superuser password changed to the service's new one")
		return "", pgPing(ctx, addr, s.port, pw)
	}
	return "", refused("PostgreSQL refuses the superuser %s's password (%v): the server's password was changed outside the platform; set it back with ALTER ROLE, or give the service the server's password", Superuser, err)
}

// pgConnect connects to the server as the superuser.
func pgConnect(ctx context.Context, addr string, port int, pw []byte) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host='%s' port=%d user=%s dbname=postgres sslmode=disable connect_timeout=3 application_name=skiff-service-host",
		addr, port, Superuser))
	if err != nil {
		return nil, err
	}
	cfg.Password = string(pw)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

func pgPing(ctx context.Context, addr string, port int, pw []byte) error {
	conn, err := pgConnect(ctx, addr, port, pw)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

func pgSetPassword(ctx context.Context, addr string, port int, old, pw []byte) error {
	conn, err := pgConnect(ctx, addr, port, old)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// ALTER ROLE takes no parameters: the password goes in as a literal.
	_, err = conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s WITH PASSWORD '%s'", Superuser, strings.ReplaceAll(string(pw), "'", "''")))
	return err
}

// isAuthError reports whether err is PostgreSQL refusing a login.
func isAuthError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000")
}

// appliedPassword is the superuser password the server was last given,
// nil if unknown.
func (s *server) appliedPassword() []byte {
	sealed, err := os.ReadFile(filepath.Join(s.dir, superPW))
	if err != nil {
		return nil
	}
	pw, err := s.h.st.Unseal(sealed)
	if err != nil {
		return nil
	}
	return pw
}

// recordPassword records, sealed, the superuser password the server was
// given, for the day the service's password changes.
func (s *server) recordPassword(pw []byte) error {
	sealed, err := s.h.st.Seal(pw)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(s.dir, superPW), sealed, 0o600, nil); err != nil {
		return fmt.Errorf("record the superuser's password: %w", err)
	}
	return nil
}
