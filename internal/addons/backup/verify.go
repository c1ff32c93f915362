package backup

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Verify restores the backup in file, of an add-on of type typ
// (skiff.AddonPostgres or skiff.AddonRedis), into a scratch server started
// for the purpose under TempDir, and compares what it holds with want,
// the contents counted when it was captured (Backup.Contents). It returns
// a short note for people ("12 tables, 10,433 rows match") and an error
// that says what differs or why the backup could not be restored. When
// the restore worked but the contents differ, the note says what the
// restore holds.
//
// A PostgreSQL dump is restored as RestorePostgres does, by a role that
// owns the database and is not a superuser, as an app's is. A Redis
// snapshot is loaded by a server that keeps keys whose time ran out, so a
// snapshot verified long after capture still has all its keys.
func (t Tools) Verify(ctx context.Context, typ, file string, want map[string]int64) (string, error) {
	got, note, err := t.Inspect(ctx, typ, file)
	if err != nil {
		return "", err
	}
	unit := map[string]string{skiff.AddonPostgres: "rows", skiff.AddonRedis: "keys"}[typ]
	if diff := differences(got, want, unit); diff != "" {
		return note + " restored", fmt.Errorf("verify: the restored backup does not hold what was captured: %s", diff)
	}
	return note + " match", nil
}

// Inspect restores the backup in file into a scratch server, as Verify
// does, and returns what it holds (rows per table, keys per database)
// and a short note of it ("12 tables, 10,433 rows"): for a backup made
// elsewhere, whose contents were never counted.
func (t Tools) Inspect(ctx context.Context, typ, file string) (map[string]int64, string, error) {
	t = t.withDefaults()
	var (
		got  map[string]int64
		err  error
		note string
	)
	switch typ {
	case skiff.AddonPostgres:
		got, err = t.restoreScratchPostgres(ctx, file)
		if err == nil {
			note = plural(len(got), "table") + ", " + plural64(sum(got), "row")
		}
	case skiff.AddonRedis:
		got, err = t.restoreScratchRedis(ctx, file)
		if err == nil {
			note = plural(len(got), "database") + ", " + plural64(sum(got), "key")
		}
	default:
		return nil, "", fmt.Errorf("verify: add-ons of type %q have no backups", typ)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", fmt.Errorf("verify: %w", ctx.Err())
		}
		return nil, "", fmt.Errorf("verify: the backup cannot be restored: %w", err)
	}
	return got, note, nil
}

// restoreScratchPostgres restores file into a scratch server and counts
// the rows of its tables.
func (t Tools) restoreScratchPostgres(ctx context.Context, file string) (map[string]int64, error) {
	if err := t.needPostgres(); err != nil {
		return nil, err
	}
	if err := t.checkDump(ctx, file); err != nil {
		return nil, err
	}
	super, stop, err := t.ScratchPostgres(ctx, "")
	if err != nil {
		return nil, err
	}
	defer stop()
	url, err := createDatabase(ctx, super, "verify")
	if err != nil {
		return nil, err
	}
	if err := t.restorePostgres(ctx, url, file); err != nil {
		if strings.Contains(err.Error(), enospcText) { // the scratch server's disk
			return nil, fmt.Errorf("%w (%v)", noSpace(t.TempDir), err)
		}
		return nil, err
	}
	return countURL(ctx, url)
}

// restoreScratchRedis loads file into a scratch server and counts the
// keys of its databases.
func (t Tools) restoreScratchRedis(ctx context.Context, file string) (map[string]int64, error) {
	if err := t.needRedis(); err != nil {
		return nil, err
	}
	s, err := t.loadRedis(ctx, "", file, true)
	if err != nil {
		return nil, err
	}
	defer s.close()
	return keyspace(ctx, s.url)
}

// differences says how got differs from want, the first few ways, or "".
func differences(got, want map[string]int64, unit string) string {
	var diffs []string
	names := map[string]int64{}
	for k := range got {
		names[k] = 0
	}
	for k := range want {
		names[k] = 0
	}
	for _, k := range sortedKeys(names) {
		g, inGot := got[k]
		w, inWant := want[k]
		switch {
		case !inGot:
			diffs = append(diffs, fmt.Sprintf("%s is missing (%s %s captured)", k, thousands(w), unit))
		case !inWant:
			diffs = append(diffs, fmt.Sprintf("%s was not captured but has %s %s", k, thousands(g), unit))
		case g != w:
			diffs = append(diffs, fmt.Sprintf("%s has %s %s, %s captured", k, thousands(g), unit, thousands(w)))
		}
	}
	const most = 5
	if len(diffs) > most {
		diffs = append(diffs[:most], fmt.Sprintf("and %d more", len(diffs)-most))
	}
	return strings.Join(diffs, "; ")
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// plural is "1 table", "2 tables".
func plural(n int, noun string) string { return plural64(int64(n), noun) }

func plural64(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return thousands(n) + " " + noun + "s"
}

// thousands writes n with commas between thousands: 10,433.
func thousands(n int64) string {
	if n < 0 {
		return "-" + thousands(-n)
	}
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
