package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// The backups of an app's add-ons: records in the backups bucket, files
// in the backups object store, both written by the addons role. Captures,
// restores and verifications are jobs of that role; listing and
// downloading are served here.

func (a *API) listBackups(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	backups, err := a.backupsOf(r.Context(), app.Name)
	if err != nil {
		writeError(w, err)
		return
	}
	out := []skiff.Backup{}
	for _, b := range backups {
		if addon := r.URL.Query().Get("addon"); addon == "" || b.Addon == addon {
			out = append(out, b)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) getBackup(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	b, err := a.appBackup(r)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (a *API) downloadBackup(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	b, err := a.appBackup(r)
	if err != nil {
		writeError(w, err)
		return
	}
	a.serveBackup(w, r, b)
}

// appBackup loads the backup named in the request path of the app named
// there.
func (a *API) appBackup(r *http.Request) (skiff.Backup, error) {
	app, _, err := a.app(r)
	if err != nil {
		return skiff.Backup{}, err
	}
	return a.backup(r.Context(), app.Name, r.PathValue("id"))
}

// captureBackup is the job of a capture of the add-on the body names
// (the app's only one when it names none).
func (a *API) captureBackup(r *http.Request, app skiff.App, req *skiff.AddonRequest) error {
	var body skiff.BackupCaptureRequest
	if err := readOptionalJSON(r, &body); err != nil {
		return err
	}
	ad, err := a.onlyAddon(r.Context(), app.Name, body.Addon)
	req.Addon, req.Kind = ad.Name, skiff.BackupManual
	return err
}

// restoreBackup is the job of a restore of a backup of the app, or of
// another app the token may use, into one of the app's add-ons.
func (a *API) restoreBackup(r *http.Request, app skiff.App, req *skiff.AddonRequest) error {
	var body skiff.BackupRestoreRequest
	if err := readJSON(r, &body); err != nil {
		return err
	}
	ctx := r.Context()
	target, err := a.onlyAddon(ctx, app.Name, body.Addon)
	if err != nil {
		return err
	}
	from := app.Name
	if body.FromApp != "" && body.FromApp != app.Name {
		other, err := a.appNamed(r, body.FromApp)
		if err != nil {
			return err
		}
		from = other.Name
	}
	id := r.PathValue("id")
	var b skiff.Backup
	if id == "latest" {
		b, err = a.latestBackup(ctx, from, func(b skiff.Backup) bool {
			if from == app.Name {
				return b.Addon == target.Name
			}
			return b.Type == target.Type
		})
	} else {
		b, err = a.doneBackup(ctx, from, id, "restored")
	}
	if err != nil {
		return err
	}
	if b.Type != target.Type {
		return skiff.Errorf(skiff.KindInvalid, "restore it into a "+b.Type+" add-on: --addon NAME",
			"backup %s is of %s, and %s is %s", b.ID, b.Type, target.Name, target.Type)
	}
	if body.Confirm != app.Name {
		return skiff.Errorf(skiff.KindInvalid, "to go ahead, run: skiff backups restore "+id+" -a "+app.Name+" --confirm "+app.Name,
			"restoring %s replaces the data of %s (a backup of it is taken first)", b.ID, target.Name)
	}
	req.Addon, req.Backup, req.Confirm = target.Name, b.ID, body.Confirm
	if from != app.Name {
		req.Backup = skiff.BackupKey(from, b.ID)
	}
	return nil
}

// verifyBackup is the job of a verification of one of the app's backups.
func (a *API) verifyBackup(r *http.Request, app skiff.App, req *skiff.AddonRequest) error {
	var b skiff.Backup
	var err error
	if id := r.PathValue("id"); id == "latest" {
		b, err = a.latestBackup(r.Context(), app.Name, func(skiff.Backup) bool { return true })
	} else {
		b, err = a.doneBackup(r.Context(), app.Name, id, "verified")
	}
	req.Addon, req.Backup = b.Addon, b.ID
	return err
}

// allBackups lists every app's done backups, newest first: what skiff
// backups pull fetches.
func (a *API) allBackups(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	var since time.Time
	if s := r.URL.Query().Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			writeError(w, skiff.Errorf(skiff.KindInvalid, "give a time as RFC 3339: 2026-01-02T03:04:05Z", "invalid since %q", s))
			return
		}
		since = t
	}
	backups, err := a.st.Backups.Values(r.Context(), "")
	if err != nil {
		writeError(w, err)
		return
	}
	out := []skiff.Backup{}
	for _, b := range backups {
		if b.State == skiff.BackupDone && !finished(b).Before(since) {
			out = append(out, b)
		}
	}
	sortBackups(out)
	writeJSON(w, http.StatusOK, out)
}

// pullBackup downloads any app's backup, for admins and backups:read
// tokens.
func (a *API) pullBackup(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	name := r.PathValue("app")
	if err := skiff.ValidateAppName(name); err != nil {
		writeError(w, err)
		return
	}
	b, err := a.backup(r.Context(), name, r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	a.serveBackup(w, r, b)
}

// serveBackup sends a done backup's file, with its size and SHA-256.
func (a *API) serveBackup(w http.ResponseWriter, r *http.Request, b skiff.Backup) {
	if b.State != skiff.BackupDone {
		writeError(w, skiff.Errorf(skiff.KindConflict, "skiff backups -a "+b.App+" lists the done ones",
			"backup %s is %s; only a done backup can be downloaded", b.ID, b.State))
		return
	}
	obj, err := a.st.BackupFiles.Get(r.Context(), b.Key())
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		writeError(w, skiff.Errorf(skiff.KindNotFound, "take another: skiff backups capture -a "+b.App,
			"the file of backup %s of %s is gone", b.ID, b.App))
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	defer obj.Close()
	info, err := obj.Info()
	if err != nil {
		writeError(w, err)
		return
	}
	a.streams.Add(1)
	defer a.streams.Done()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatUint(info.Size, 10))
	h.Set("Content-Disposition", `attachment; filename="`+b.App+"-"+b.ID+skiff.BackupExt(b)+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set(skiff.BackupSHA256Header, b.SHA256)
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, obj); err != nil && r.Context().Err() == nil {
		a.log.Warn("backup download broke off", "app", b.App, "backup", b.ID, "err", err)
	}
}

var backupIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// backup loads app's backup id.
func (a *API) backup(ctx context.Context, app, id string) (skiff.Backup, error) {
	if !backupIDRE.MatchString(id) {
		return skiff.Backup{}, skiff.Errorf(skiff.KindInvalid, "skiff backups -a "+app+" lists the backups' IDs, e.g. b001", "invalid backup ID %q", id)
	}
	b, _, err := a.st.Backups.Get(ctx, skiff.BackupKey(app, id))
	if errors.Is(err, skiff.ErrNotFound) {
		return b, skiff.Errorf(skiff.KindNotFound, "skiff backups -a "+app+" lists them", "%s has no backup %s", app, id)
	}
	return b, err
}

// doneBackup is backup, refused unless done: what is to be done to it
// ("restored") needs the whole file.
func (a *API) doneBackup(ctx context.Context, app, id, what string) (skiff.Backup, error) {
	b, err := a.backup(ctx, app, id)
	if err == nil && b.State != skiff.BackupDone {
		err = skiff.Errorf(skiff.KindConflict, "skiff backups -a "+app+" lists the done ones",
			"backup %s is %s; only a done backup can be %s", id, b.State, what)
	}
	return b, err
}

// latestBackup is app's newest done backup that keep accepts.
func (a *API) latestBackup(ctx context.Context, app string, keep func(skiff.Backup) bool) (skiff.Backup, error) {
	backups, err := a.backupsOf(ctx, app)
	if err != nil {
		return skiff.Backup{}, err
	}
	for _, b := range backups {
		if b.State == skiff.BackupDone && keep(b) {
			return b, nil
		}
	}
	return skiff.Backup{}, skiff.Errorf(skiff.KindNotFound, "take one: skiff backups capture -a "+app, "%s has no done backup to use", app)
}

// backupsOf lists app's backups, newest first.
func (a *API) backupsOf(ctx context.Context, app string) ([]skiff.Backup, error) {
	backups, err := a.st.Backups.Values(ctx, app+".*")
	if err != nil {
		return nil, err
	}
	sortBackups(backups)
	return backups, nil
}

// sortBackups puts the newest first.
func sortBackups(bs []skiff.Backup) {
	sort.SliceStable(bs, func(i, j int) bool {
		if !bs[i].StartedAt.Equal(bs[j].StartedAt) {
			return bs[i].StartedAt.After(bs[j].StartedAt)
		}
		if bs[i].App != bs[j].App {
			return bs[i].App < bs[j].App
		}
		return bs[i].ID > bs[j].ID
	})
}

func finished(b skiff.Backup) time.Time {
	if b.FinishedAt.IsZero() {
		return b.StartedAt
	}
	return b.FinishedAt
}

// appNamed loads an app other than the request's, which the token must
// also be allowed to use.
func (a *API) appNamed(r *http.Request, name string) (skiff.App, error) {
	if err := skiff.ValidateAppName(name); err != nil {
		return skiff.App{}, err
	}
	app, _, err := a.st.Apps.Get(r.Context(), name)
	if errors.Is(err, skiff.ErrNotFound) {
		return app, skiff.Errorf(skiff.KindNotFound, "skiff apps lists your apps", "no app named %s", name)
	}
	if err == nil && !tokenOf(r).MayUse(app) {
		return skiff.App{}, skiff.Errorf(skiff.KindForbidden, "ask its owner or an admin to restore it for you",
			"app %s belongs to another user", name)
	}
	return app, err
}

// readOptionalJSON is readJSON for a body that may be left out.
func readOptionalJSON(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return skiff.Errorf(skiff.KindInvalid, "send the body again", "reading the request body: %v", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	return decodeJSON(bytes.NewReader(data), v)
}

// uploadBackup stores a backup file made elsewhere (a download from this
// or another installation, a pg_dump -Fc, an RDB file) as a backup of one
// of the app's add-ons, which can then be verified and restored. The file
// must be of the add-on's type; a SHA-256 sent in BackupSHA256Header must
// match what arrived, or nothing is kept.
func (a *API) uploadBackup(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ad, err := a.onlyAddon(r.Context(), app.Name, r.URL.Query().Get("addon"))
	if err != nil {
		writeError(w, err)
		return
	}
	format, magic := skiff.FormatPostgres, skiff.MagicPostgres
	if ad.Type == skiff.AddonRedis {
		format, magic = skiff.FormatRedis, skiff.MagicRedis
	}
	body := bufio.NewReaderSize(r.Body, 64<<10)
	if head, _ := body.Peek(len(magic)); string(head) != magic {
		writeError(w, skiff.Errorf(skiff.KindInvalid, "upload a pg_dump archive in its custom format (pg_dump -Fc) to a postgres add-on, an RDB file to a redis one",
			"the file is not a %s backup, which add-on %s takes", format, ad.Name))
		return
	}
	b, err := a.st.NewBackup(r.Context(), skiff.Backup{App: app.Name, Addon: ad.Name, Type: ad.Type, Kind: skiff.BackupUploaded,
		State: skiff.BackupRunning, Format: format, StartedAt: time.Now().UTC()})
	if err != nil {
		writeError(w, err)
		return
	}
	sum := sha256.New()
	counted := &countingReader{r: io.TeeReader(body, sum)}
	_, err = a.st.BackupFiles.Put(r.Context(), jetstream.ObjectMeta{Name: b.Key()}, counted)
	b.Size, b.SHA256, b.FinishedAt = counted.n, hex.EncodeToString(sum.Sum(nil)), time.Now().UTC()
	if want := r.Header.Get(skiff.BackupSHA256Header); err == nil && want != "" && !strings.EqualFold(want, b.SHA256) {
		err = skiff.Errorf(skiff.KindInvalid, "upload the file again", "the upload arrived damaged: its SHA-256 is %.12s, the file's %.12s", b.SHA256, want)
	}
	ctx := context.WithoutCancel(r.Context())
	if err != nil {
		_ = a.st.BackupFiles.Delete(ctx, b.Key())
		_ = a.st.Backups.Delete(ctx, b.Key())
		writeError(w, err)
		return
	}
	b.State = skiff.BackupDone
	if _, err := a.st.Backups.Put(ctx, b.Key(), b); err != nil {
		writeError(w, err)
		return
	}
	a.st.Emit(skiff.Event{App: app.Name, Type: skiff.EventBackupCaptured, Actor: tok.User,
		Message: fmt.Sprintf("Backup %s of %s uploaded by %s (%d bytes)", b.ID, ad.Name, tok.User, b.Size)})
	writeJSON(w, http.StatusCreated, b)
}

// countingReader counts what is read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
