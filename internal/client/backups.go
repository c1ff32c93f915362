package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Backups lists an app's backups, newest first.
func (c *Client) Backups(ctx context.Context, app string) ([]skiff.Backup, error) {
	var out []skiff.Backup
	return out, c.call(ctx, "GET", appPath(app, "backups"), nil, &out)
}

// Backup describes one of an app's backups.
func (c *Client) Backup(ctx context.Context, app, id string) (skiff.Backup, error) {
	var b skiff.Backup
	return b, c.call(ctx, "GET", appPath(app, "backups", url.PathEscape(id)), nil, &b)
}

// CaptureBackup takes a backup of an add-on (the app's only one when
// addon is empty); the result's Backup is the backup taken.
func (c *Client) CaptureBackup(ctx context.Context, app, addon string, onLine func(string)) (skiff.StreamMessage, error) {
	return c.stream(ctx, "POST", appPath(app, "backups"), nil, skiff.BackupCaptureRequest{Addon: addon}, onLine,
		"skiff backups -a "+app+" shows whether it was taken")
}

// RestoreBackup restores backup id ("latest" for the newest) into one of
// the app's add-ons, replacing its data.
func (c *Client) RestoreBackup(ctx context.Context, app, id string, req skiff.BackupRestoreRequest, onLine func(string)) (skiff.StreamMessage, error) {
	return c.stream(ctx, "POST", appPath(app, "backups", url.PathEscape(id), "restore"), nil, req, onLine,
		"skiff logs -a "+app+" --source platform shows how it went")
}

// VerifyBackup restores a backup into a scratch server and compares what
// it holds with what was measured when it was taken.
func (c *Client) VerifyBackup(ctx context.Context, app, id string, onLine func(string)) (skiff.StreamMessage, error) {
	return c.stream(ctx, "POST", appPath(app, "backups", url.PathEscape(id), "verify"), nil, nil, onLine,
		"skiff backups info "+id+" -a "+app+" shows the verification once it is done")
}

// AllBackups lists every app's done backups finished at since or later
// (all of them for a zero since), newest first: for admins and
// backups:read tokens.
func (c *Client) AllBackups(ctx context.Context, since time.Time) ([]skiff.Backup, error) {
	p := "/v1/backups"
	if !since.IsZero() {
		p += "?since=" + url.QueryEscape(since.UTC().Format(time.RFC3339))
	}
	var out []skiff.Backup
	return out, c.call(ctx, "GET", p, nil, &out)
}

// CreateToken makes a token limited to scope (admins only).
func (c *Client) CreateToken(ctx context.Context, scope string) (skiff.ScopedToken, error) {
	var t skiff.ScopedToken
	return t, c.call(ctx, "POST", "/v1/tokens", skiff.TokenRequest{Scope: scope}, &t)
}

// DownloadBackup starts the download of one of an app's done backups.
func (c *Client) DownloadBackup(ctx context.Context, app, id string) (*BackupDownload, error) {
	return c.download(ctx, appPath(app, "backups", url.PathEscape(id), "download"), app+"/"+id)
}

// PullBackup is DownloadBackup for a token that may pull every app's
// backups (an admin's, or a backups:read token).
func (c *Client) PullBackup(ctx context.Context, app, id string) (*BackupDownload, error) {
	return c.download(ctx, "/v1/backups/"+url.PathEscape(app)+"/"+url.PathEscape(id)+"/download", app+"/"+id)
}

func (c *Client) download(ctx context.Context, path, name string) (*BackupDownload, error) {
	resp, err := c.request(ctx, "GET", path, nil, nil, "")
	if err != nil {
		return nil, err
	}
	return &BackupDownload{Size: resp.ContentLength, SHA256: resp.Header.Get(skiff.BackupSHA256Header),
		name: name, resp: resp, hash: sha256.New()}, nil
}

// BackupDownload is a backup's file being downloaded: read it, then close
// it. The last Read returns an error, instead of io.EOF, if what was read
// is not the whole file or does not match its SHA-256.
type BackupDownload struct {
	// Size is the file's size, -1 when the server did not say.
	Size int64
	// SHA256 is the file's checksum (hex) as the server recorded it when
	// the backup was taken; empty when it recorded none, and then the
	// download is not checked.
	SHA256 string
	name   string
	resp   *http.Response
	hash   hash.Hash
	n      int64
}

func (d *BackupDownload) Read(p []byte) (int, error) {
	n, err := d.resp.Body.Read(p)
	d.hash.Write(p[:n])
	d.n += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		if d.Size >= 0 && d.n != d.Size {
			return n, &skiff.Error{Kind: skiff.KindUnavailable, Message: "the download of " + d.name + " ended after " +
				strconv.FormatInt(d.n, 10) + " of " + strconv.FormatInt(d.Size, 10) + " bytes", Hint: "download it again"}
		}
		if sum := hex.EncodeToString(d.hash.Sum(nil)); d.SHA256 != "" && sum != d.SHA256 {
			return n, &skiff.Error{Kind: skiff.KindFailed, Message: "the download of " + d.name + " does not match its SHA-256 (got " +
				sum + ", want " + d.SHA256 + ")", Hint: "download it again; if it fails again, the stored file is damaged: skiff backups verify"}
		}
	case err != nil:
		err = &skiff.Error{Kind: skiff.KindUnavailable, Message: "the download of " + d.name + " broke off", Hint: "download it again", Err: err}
	}
	return n, err
}

// Close ends the download's request.
func (d *BackupDownload) Close() error { return d.resp.Body.Close() }

// UploadBackup stores a backup file made elsewhere as a backup of one of
// the app's add-ons (its only one when addon is empty). sum, the file's
// SHA-256 in hex, is checked by the server when given.
func (c *Client) UploadBackup(ctx context.Context, app, addon string, file io.Reader, sum string) (skiff.Backup, error) {
	var b skiff.Backup
	q := url.Values{}
	if addon != "" {
		q.Set("addon", addon)
	}
	resp, err := c.requestWith(ctx, "POST", appPath(app, "backups", "upload"), q, LocalBody(file), "application/octet-stream",
		http.Header{skiff.BackupSHA256Header: {sum}})
	if err != nil {
		return b, err
	}
	defer resp.Body.Close()
	return b, json.NewDecoder(resp.Body).Decode(&b)
}
