package addons

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// capture takes a backup of an add-on.
func (m *Manager) capture(ctx context.Context, j *job) (*skiff.Backup, error) {
	ctx, release, a, err := m.holdReady(ctx, j)
	if err != nil {
		return nil, err
	}
	defer release()
	kind := j.Kind
	if kind == "" {
		kind = skiff.BackupManual
	}
	return m.captureHeld(ctx, j, a, kind)
}

// dataURL is the URL backups of an add-on are taken and restored
// through: the app's own user for PostgreSQL, so that what is restored
// belongs to it; the default user for Redis, which replication needs.
func (m *Manager) dataURL(ctx context.Context, j *job, a skiff.Addon) (string, error) {
	if a.Type == skiff.AddonPostgres {
		pw, err := m.st.Unseal(a.Password)
		if err != nil {
			return "", err
		}
		return addonURL(a, string(pw)) + "?sslmode=disable", nil
	}
	svc, err := m.service(ctx, a.Service)
	if err != nil {
		return "", err
	}
	st, err := m.waitService(ctx, j, svc)
	if err != nil {
		return "", err
	}
	return m.superuserURL(svc, st.Addr)
}

// captureHeld takes a backup of an add-on whose lease the job holds: the
// file is written and checked on this node's disk first, then stored;
// the record says done only once every byte is stored, and says failed,
// with why, otherwise.
func (m *Manager) captureHeld(ctx context.Context, j *job, a skiff.Addon, kind string) (*skiff.Backup, error) {
	format := skiff.FormatPostgres
	if a.Type == skiff.AddonRedis {
		format = skiff.FormatRedis
	}
	b, err := m.st.NewBackup(ctx, skiff.Backup{App: a.App, Addon: a.Name, Type: a.Type, Kind: kind, State: skiff.BackupRunning,
		Format: format, StartedAt: time.Now().UTC()})
	if err != nil {
		return nil, err
	}
	j.say("Capturing %s of %s into backup %s", a.Name, a.App, b.ID)
	err = m.captureFile(ctx, j, a, &b)
	bctx := context.WithoutCancel(ctx)
	if err != nil {
		_ = m.st.BackupFiles.Delete(bctx, b.Key())
		b.State, b.Error, b.FinishedAt = skiff.BackupFailed, err.Error(), time.Now().UTC()
		if _, perr := m.st.Backups.Put(bctx, b.Key(), b); perr != nil {
			j.log.Warn("record the failed backup", "backup", b.ID, "err", perr)
		}
		m.st.Emit(skiff.Event{App: a.App, Type: skiff.EventBackupFailed, Component: skiff.RoleAddons, Actor: j.Actor,
			Message: fmt.Sprintf("Backup %s of %s failed: %v", b.ID, a.Name, err)})
		return &b, fmt.Errorf("backup %s of %s failed: %w", b.ID, a.Name, err)
	}
	b.State, b.FinishedAt = skiff.BackupDone, time.Now().UTC()
	if _, err := m.st.Backups.Put(ctx, b.Key(), b); err != nil {
		return &b, err
	}
	m.st.Emit(skiff.Event{App: a.App, Type: skiff.EventBackupCaptured, Component: skiff.RoleAddons, Actor: j.Actor,
		Message: fmt.Sprintf("Backup %s of %s captured (%s, %d bytes)", b.ID, a.Name, kind, b.Size)})
	j.say("Backup %s done: %s, sha256 %s", b.ID, skiff.HumanBytes(b.Size), b.SHA256[:12])
	return &b, nil
}

// captureFile writes the backup into a file, then stores it and fills in
// b's size, checksum and contents.
func (m *Manager) captureFile(ctx context.Context, j *job, a skiff.Addon, b *skiff.Backup) error {
	u, err := m.dataURL(ctx, j, a)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(m.cfg.WorkDir, "capture-*")
	if err != nil {
		return diskError("make a file for the backup", m.cfg.WorkDir, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	sum := sha256.New()
	w := io.MultiWriter(f, sum)
	if a.Type == skiff.AddonPostgres {
		b.Contents, err = m.cfg.Tools.CapturePostgres(ctx, u, w)
	} else {
		b.Contents, err = m.cfg.Tools.CaptureRedis(ctx, u, w)
	}
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return diskError("write the backup", m.cfg.WorkDir, err)
	}
	info, err := f.Stat()
	if err != nil {
		return err
	}
	b.Size, b.SHA256 = info.Size(), hex.EncodeToString(sum.Sum(nil))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	j.say("Storing %s", skiff.HumanBytes(b.Size))
	if _, err := m.st.BackupFiles.Put(ctx, jetstream.ObjectMeta{Name: b.Key(),
		Headers: map[string][]string{"Skiff-Sha256": {b.SHA256}}}, f); err != nil {
		return fmt.Errorf("store the backup: %w", err)
	}
	return nil
}

// diskError says clearly that a disk is full, where.
func diskError(what, dir string, err error) error {
	if isNoSpace(err) {
		return skiff.Errorf(skiff.KindUnavailable, "free space there (or set --addons-dir to a bigger disk) and capture again; earlier backups are untouched",
			"could not %s: the disk holding %s is full", what, dir)
	}
	return fmt.Errorf("could not %s in %s: %w", what, dir, err)
}

// fetch copies a stored backup into a file in the work directory and
// checks it against its record: the caller removes the file.
func (m *Manager) fetch(ctx context.Context, b skiff.Backup) (string, error) {
	f, err := os.CreateTemp(m.cfg.WorkDir, "fetch-*")
	if err != nil {
		return "", diskError("make a file for the backup", m.cfg.WorkDir, err)
	}
	name := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(name)
		return "", err
	}
	obj, err := m.st.BackupFiles.Get(ctx, b.Key())
	if err != nil {
		return fail(fmt.Errorf("read backup %s: %w", b.ID, err))
	}
	defer obj.Close()
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, sum), obj)
	if err != nil {
		if isNoSpace(err) {
			return fail(diskError("copy the backup", m.cfg.WorkDir, err))
		}
		return fail(fmt.Errorf("read backup %s: %w", b.ID, err))
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != b.SHA256 || n != b.Size {
		return fail(skiff.Errorf(skiff.KindFailed, "restore an earlier backup (skiff backups -a "+b.App+")",
			"backup %s is damaged: its stored bytes (%d, sha256 %.12s) are not what was captured (%d, sha256 %.12s)", b.ID, n, got, b.Size, b.SHA256))
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	return name, nil
}

// backupFor resolves the backup a restore names: ID or APP.ID, or
// "latest" (or empty) for the add-on's newest done backup.
func (m *Manager) backupFor(ctx context.Context, a skiff.Addon, ref string) (skiff.Backup, error) {
	if ref == "" || ref == "latest" {
		all, err := m.st.Backups.Values(ctx, a.App+".*")
		if err != nil {
			return skiff.Backup{}, err
		}
		var best *skiff.Backup
		for i, b := range all {
			if b.Addon == a.Name && b.State == skiff.BackupDone && (best == nil || b.StartedAt.After(best.StartedAt)) {
				best = &all[i]
			}
		}
		if best == nil {
			return skiff.Backup{}, skiff.Errorf(skiff.KindNotFound, "capture one with skiff backups capture -a "+a.App,
				"add-on %s of %s has no backup", a.Name, a.App)
		}
		return *best, nil
	}
	key := ref
	if !strings.Contains(ref, ".") {
		key = skiff.BackupKey(a.App, ref)
	}
	b, _, err := m.st.Backups.Get(ctx, key)
	if errors.Is(err, skiff.ErrNotFound) {
		return b, skiff.Errorf(skiff.KindNotFound, "skiff backups -a "+a.App+" lists them", "no backup %s", ref)
	}
	return b, err
}

// restore puts a backup's data into an add-on, after taking a backup of
// what is there now.
func (m *Manager) restore(ctx context.Context, j *job) (*skiff.Backup, error) {
	if err := confirm(j, "restoring a backup into "+j.Addon+" (it replaces the data there)"); err != nil {
		return nil, err
	}
	ctx, release, a, err := m.holdReady(ctx, j)
	if err != nil {
		return nil, err
	}
	defer release()
	b, err := m.backupFor(ctx, a, j.Backup)
	if err != nil {
		return nil, err
	}
	if b.Type != a.Type {
		return nil, skiff.Errorf(skiff.KindInvalid, "restore it into a "+b.Type+" add-on",
			"backup %s is of a %s add-on; %s is %s", b.ID, b.Type, a.Name, a.Type)
	}
	if b.State != skiff.BackupDone {
		return nil, skiff.Errorf(skiff.KindConflict, "choose a backup that is done (skiff backups -a "+b.App+")",
			"backup %s is %s", b.ID, b.State)
	}
	j.say("Fetching backup %s (%s)", b.ID, skiff.HumanBytes(b.Size))
	file, err := m.fetch(ctx, b)
	if err != nil {
		return nil, err
	}
	defer os.Remove(file)
	j.say("Taking a backup of %s as it is now first", a.Name)
	if _, err := m.captureHeld(ctx, j, a, skiff.BackupRestore); err != nil {
		return nil, skiff.Errorf(skiff.KindFailed, "fix what stops the backup and restore again; the add-on is as it was",
			"could not take a backup of %s before restoring: %v", a.Name, err)
	}
	u, err := m.dataURL(ctx, j, a)
	if err != nil {
		return nil, err
	}
	j.say("Restoring %s into %s", b.ID, a.Name)
	if a.Type == skiff.AddonPostgres {
		err = m.cfg.Tools.RestorePostgres(ctx, u, file)
	} else {
		err = m.cfg.Tools.RestoreRedis(ctx, u, file)
	}
	if err != nil {
		return nil, fmt.Errorf("restore %s into %s: %w", b.ID, a.Name, err)
	}
	m.st.Emit(skiff.Event{App: a.App, Type: skiff.EventBackupRestored, Component: skiff.RoleAddons, Actor: j.Actor,
		Message: fmt.Sprintf("Backup %s restored into %s by %s", b.Key(), a.Name, orSomeone(j.Actor))})
	j.say("Restored %s into %s", b.ID, a.Name)
	return &b, nil
}

// verify restores a backup into a scratch server and compares what it
// holds with what was captured; the result is kept in the backup's
// record, and a failure raises an event.
func (m *Manager) verify(ctx context.Context, j *job) (*skiff.Backup, error) {
	ref := j.Backup
	if !strings.Contains(ref, ".") {
		ref = skiff.BackupKey(j.App, ref)
	}
	b, _, err := m.st.Backups.Get(ctx, ref)
	if errors.Is(err, skiff.ErrNotFound) {
		return nil, skiff.Errorf(skiff.KindNotFound, "skiff backups -a "+j.App+" lists them", "no backup %s", j.Backup)
	}
	if err != nil {
		return nil, err
	}
	if b.State != skiff.BackupDone {
		return nil, skiff.Errorf(skiff.KindConflict, "", "backup %s is %s", b.ID, b.State)
	}
	b, err = m.verifyBackup(ctx, j, b)
	return &b, err
}

// verifyBackup checks a backup and records the result.
func (m *Manager) verifyBackup(ctx context.Context, j *job, b skiff.Backup) (skiff.Backup, error) {
	j.say("Verifying backup %s: restoring it into a scratch server", b.ID)
	counted := false // an uploaded backup's contents are counted at its first verification
	note, verr := func() (string, error) {
		file, err := m.fetch(ctx, b)
		if err != nil {
			return "", err
		}
		defer os.Remove(file)
		if b.Kind == skiff.BackupUploaded && b.Contents == nil {
			got, note, err := m.cfg.Tools.Inspect(ctx, b.Type, file)
			if err == nil {
				b.Contents, counted = got, true
				note += " restored (counted now: the backup was made elsewhere)"
			}
			return note, err
		}
		return m.cfg.Tools.Verify(ctx, b.Type, file, b.Contents)
	}()
	if ctx.Err() != nil {
		return b, ctx.Err()
	}
	b.VerifiedAt = time.Now().UTC()
	if verr != nil {
		b.Verified, b.VerifyNote = skiff.BackupVerifyError, verr.Error()
	} else {
		b.Verified, b.VerifyNote = skiff.BackupVerifyOK, note
	}
	v, _, err := m.st.Backups.Update(ctx, b.Key(), func(cur *skiff.Backup) error {
		cur.Verified, cur.VerifiedAt, cur.VerifyNote = b.Verified, b.VerifiedAt, b.VerifyNote
		if counted {
			cur.Contents = b.Contents
		}
		return nil
	})
	if err != nil {
		return b, err
	}
	if verr != nil {
		m.st.Emit(skiff.Event{App: b.App, Type: skiff.EventBackupVerifyFail, Component: skiff.RoleAddons, Actor: j.Actor,
			Message: fmt.Sprintf("Backup %s of %s failed verification: %v", b.ID, b.Addon, verr)})
		j.say("Backup %s FAILED verification: %v", b.ID, verr)
		return v, nil
	}
	m.st.Emit(skiff.Event{App: b.App, Type: skiff.EventBackupVerified, Component: skiff.RoleAddons, Actor: j.Actor,
		Message: fmt.Sprintf("Backup %s of %s verified: %s", b.ID, b.Addon, note)})
	j.say("Backup %s verified: %s", b.ID, note)
	return v, nil
}

func notFoundObject(err error) bool { return errors.Is(err, jetstream.ErrObjectNotFound) }
