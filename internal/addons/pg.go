package addons

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// pgConnect opens a connection to url, giving up after 10 s.
func pgConnect(ctx context.Context, url string) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, url)
	if err != nil {
		return nil, skiff.Errorf(skiff.KindUnavailable, "skiff addons info shows the server's state; try again once it is up",
			"cannot reach the PostgreSQL server: %v", err)
	}
	return conn, nil
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// pgCode is the SQLSTATE of err, if it is a server's error.
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// pgCreate makes a login role and a database it owns, that no other role
// (but superusers) may connect to. Done again, it sets the password and
// finds the rest made.
func pgCreate(ctx context.Context, admin, db, user, pw string) error {
	conn, err := pgConnect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "CREATE ROLE "+ident(user)+" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD "+literal(pw))
	if pgCode(err) == "42710" { // duplicate_object: made by an earlier try
		_, err = conn.Exec(ctx, "ALTER ROLE "+ident(user)+" PASSWORD "+literal(pw))
	}
	if err != nil {
		return fmt.Errorf("create role %s: %w", user, err)
	}
	// The role creating a database must be able to give it away: on an
	// admin's own server that may not be a superuser.
	if _, err := conn.Exec(ctx, "GRANT "+ident(user)+" TO CURRENT_USER"); err != nil && pgCode(err) != "0LP01" {
		return fmt.Errorf("grant role %s: %w", user, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident(db)+" OWNER "+ident(user)+" ENCODING 'UTF8' TEMPLATE template0"); err != nil && pgCode(err) != "42P04" {
		return fmt.Errorf("create database %s: %w", db, err)
	}
	for _, q := range []string{
		"REVOKE ALL ON DATABASE " + ident(db) + " FROM PUBLIC",
		"GRANT ALL ON DATABASE " + ident(db) + " TO " + ident(user),
		// Apps have no business in the server's own databases either.
		"REVOKE CONNECT ON DATABASE postgres FROM PUBLIC",
		"REVOKE CONNECT ON DATABASE template1 FROM PUBLIC",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// pgDrop removes a database, closing its connections, and its role.
func pgDrop(ctx context.Context, admin, db, user string) error {
	conn, err := pgConnect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(db)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", db, err)
	}
	if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+ident(user)); err != nil {
		return fmt.Errorf("drop role %s: %w", user, err)
	}
	return nil
}

// pgPassword sets a role's password.
func pgPassword(ctx context.Context, admin, user, pw string) error {
	conn, err := pgConnect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "ALTER ROLE "+ident(user)+" PASSWORD "+literal(pw)); err != nil {
		return fmt.Errorf("set the password of %s: %w", user, err)
	}
	return nil
}

// pgUsage measures a database: its size, its connections, and the
// statements run in it and their time, from pg_stat_statements where the
// server has it.
func pgUsage(ctx context.Context, admin, db string) (skiff.AddonUsage, error) {
	u := skiff.AddonUsage{Time: time.Now().UTC()}
	conn, err := pgConnect(ctx, admin)
	if err != nil {
		return u, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	err = conn.QueryRow(ctx, `SELECT pg_database_size(d.oid), COALESCE(s.numbackends, 0)
		FROM pg_database d LEFT JOIN pg_stat_database s ON s.datid = d.oid WHERE d.datname = $1`, db).Scan(&u.Bytes, &u.Connections)
	if err != nil {
		return u, fmt.Errorf("measure database %s: %w", db, err)
	}
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		return u, nil // a server without the module: sizes only
	}
	var ms float64
	err = conn.QueryRow(ctx, `SELECT COALESCE(sum(s.calls), 0)::bigint, COALESCE(sum(s.total_exec_time), 0)::float8
		FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1`, db).Scan(&u.Queries, &ms)
	if err == nil {
		u.QuerySeconds = ms / 1000
	}
	return u, nil
}
