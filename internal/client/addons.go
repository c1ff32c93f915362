package client

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Addons lists an app's add-ons.
func (c *Client) Addons(ctx context.Context, app string) ([]skiff.AddonView, error) {
	var out []skiff.AddonView
	return out, c.call(ctx, "GET", appPath(app, "addons"), nil, &out)
}

// Addon describes one of an app's add-ons.
func (c *Client) Addon(ctx context.Context, app, name string) (skiff.AddonView, error) {
	var v skiff.AddonView
	return v, c.call(ctx, "GET", appPath(app, "addons", url.PathEscape(name)), nil, &v)
}

// CreateAddon creates an add-on, calling onLine with each line of
// progress; the result's Addon is the add-on made.
func (c *Client) CreateAddon(ctx context.Context, app string, req skiff.AddonCreateRequest, onLine func(string)) (skiff.StreamMessage, error) {
	return c.stream(ctx, "POST", appPath(app, "addons"), nil, req, onLine, "skiff addons -a "+app+" shows whether it was made")
}

// DestroyAddon deletes an add-on and its data; confirm must be the app's
// name.
func (c *Client) DestroyAddon(ctx context.Context, app, name, confirm string, onLine func(string)) (skiff.StreamMessage, error) {
	return c.stream(ctx, "DELETE", appPath(app, "addons", url.PathEscape(name)), url.Values{"confirm": {confirm}}, nil, onLine,
		"skiff addons -a "+app+" shows whether it is gone")
}

// RotateCredentials gives an add-on's user a new password and the app's
// config var the new URL.
func (c *Client) RotateCredentials(ctx context.Context, app, name string, onLine func(string)) (skiff.StreamMessage, error) {
	return c.stream(ctx, "POST", appPath(app, "addons", url.PathEscape(name), "credentials", "rotate"), nil, nil, onLine,
		"skiff addons info "+name+" -a "+app+" shows when its credentials last changed")
}

// SetBackupSchedule sets the daily time (UTC, "02:00") of an add-on's
// scheduled backup; an empty at removes it.
func (c *Client) SetBackupSchedule(ctx context.Context, app, name, at string) (skiff.AddonView, error) {
	var v skiff.AddonView
	p := appPath(app, "addons", url.PathEscape(name), "backup-schedule")
	if at == "" {
		return v, c.call(ctx, "DELETE", p, nil, &v)
	}
	return v, c.call(ctx, "PUT", p, skiff.BackupScheduleRequest{At: at}, &v)
}

// DialTunnel opens a connection to an add-on's server through the API:
// what is written to it reaches the server, and the server's answers
// come back, as over a TCP connection to it. The connection has no
// deadlines.
func (c *Client) DialTunnel(ctx context.Context, app, addon string) (net.Conn, error) {
	_, rw, err := c.upgrade(ctx, "GET", appPath(app, "addons", url.PathEscape(addon), "tunnel"), nil, skiff.TunnelUpgrade, "open the tunnel")
	if err != nil {
		return nil, err
	}
	return &tunnelConn{ReadWriteCloser: rw, addr: tunnelAddr(app + "/" + addon)}, nil
}

// tunnelConn is a tunnel's upgraded connection as a net.Conn.
type tunnelConn struct {
	io.ReadWriteCloser
	addr tunnelAddr
}

func (t *tunnelConn) LocalAddr() net.Addr  { return t.addr }
func (t *tunnelConn) RemoteAddr() net.Addr { return t.addr }

// errNoDeadlines answers the deadline setters: the connection under the
// upgraded answer is not the client's to set them on.
var errNoDeadlines = errors.New("a tunnel has no deadlines")

func (t *tunnelConn) SetDeadline(time.Time) error      { return errNoDeadlines }
func (t *tunnelConn) SetReadDeadline(time.Time) error  { return errNoDeadlines }
func (t *tunnelConn) SetWriteDeadline(time.Time) error { return errNoDeadlines }

// tunnelAddr names a tunnel's ends: APP/ADDON.
type tunnelAddr string

func (a tunnelAddr) Network() string { return skiff.TunnelUpgrade }
func (a tunnelAddr) String() string  { return string(a) }

// stream sends a request answered with NDJSON StreamMessages, calling
// onLine with each line, and returns the result; an error message is a
// *skiff.Error. lost is the hint when the stream stops before its end.
func (c *Client) stream(ctx context.Context, method, path string, query url.Values, body any, onLine func(string), lost string) (skiff.StreamMessage, error) {
	resp, err := c.request(ctx, method, path, query, body, "")
	if err != nil {
		return skiff.StreamMessage{}, err
	}
	defer resp.Body.Close()
	return readStream(resp.Body, onLine,
		func(err error) error {
			return &skiff.Error{Kind: skiff.KindInternal, Message: "unreadable answer from " + method + " " + path,
				Hint: "the CLI and the server may be of different versions: skiff version", Err: err}
		},
		func(err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &skiff.Error{Kind: skiff.KindUnavailable, Message: "the job's output stopped before its result",
				Hint: "the job may go on without us: " + lost, Err: err}
		})
}
