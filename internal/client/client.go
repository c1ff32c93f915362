// Package client is the Go client of Skiff's HTTP API (docs/api.md). The
// CLI is built on it and uses nothing else to reach the platform.
//
// Every error a method returns is a *skiff.Error: the API's own errors keep
// their kind, message and hint, and a platform that cannot be reached is
// reported as KindUnavailable with a hint about where the client looked.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Client calls one Skiff API with one token.
type Client struct {
	base  string
	token string
	http  *http.Client
	// UserAgent is sent with every request.
	UserAgent string
}

// New returns a client of the API at base (e.g. http://127.0.0.1:7070).
func New(base, token string) *Client {
	return &Client{
		base:      strings.TrimRight(base, "/"),
		token:     token,
		http:      &http.Client{},
		UserAgent: "skiff-cli",
	}
}

// NewUnix returns a client of an API served on a Unix socket, such as the
// ssh role's socket for git hooks.
func NewUnix(socket, token string) *Client {
	c := New("http://skiff", token)
	c.http = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	return c
}

// BaseURL is the API's address as the client uses it.
func (c *Client) BaseURL() string { return c.base }

// request sends one request. body, when not nil, is sent as JSON unless it
// is an io.Reader, which is sent as is with contentType.
func (c *Client) request(ctx context.Context, method, path string, query url.Values, body any, contentType string) (*http.Response, error) {
	return c.requestWith(ctx, method, path, query, body, contentType, nil)
}

// requestWith is request with further headers.
func (c *Client) requestWith(ctx context.Context, method, path string, query url.Values, body any, contentType string, header http.Header) (*http.Response, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd = b
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
		contentType = "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, skiff.Errorf(skiff.KindInvalid, "give the API address as http://HOST:PORT", "invalid API address %q: %v", c.base, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("User-Agent", c.UserAgent)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// A body that failed to read (an archive that could not be made)
		// is the caller's error, not the network's.
		var local *localError
		if errors.As(err, &local) {
			return nil, local.err
		}
		return nil, &skiff.Error{Kind: skiff.KindUnavailable, Message: "cannot reach the Skiff API at " + c.base,
			Hint: "check that skiff server is running there, or log in to another: skiff login --api URL --token TOKEN", Err: unwrapURL(err)}
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

// localError marks an error of a request body's own making.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }

// LocalBody wraps r so that an error reading it is returned by the request
// as is, rather than as a failure to reach the API.
func LocalBody(r io.Reader) io.Reader { return &localReader{r} }

type localReader struct{ r io.Reader }

func (l *localReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if err != nil && err != io.EOF {
		err = &localError{err}
	}
	return n, err
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// decodeError turns an error response into a *skiff.Error.
func decodeError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var ae skiff.APIError
	if json.Unmarshal(data, &ae) == nil && ae.Error != "" {
		kind := ae.Code
		if kind == "" {
			kind = skiff.KindOfStatus(resp.StatusCode)
		}
		return &skiff.Error{Kind: kind, Message: ae.Error, Hint: ae.Hint}
	}
	msg := strings.TrimSpace(string(data))
	if msg == "" {
		msg = resp.Status
	}
	return &skiff.Error{Kind: skiff.KindOfStatus(resp.StatusCode), Message: "the API answered " + resp.Status + ": " + msg,
		Hint: "is this address a Skiff API? skiff login --api URL sets it"}
}

// call sends a JSON request and decodes a JSON answer into out (when not nil).
func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.request(ctx, method, path, nil, body, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return &skiff.Error{Kind: skiff.KindInternal, Message: "unreadable answer from " + method + " " + path,
			Hint: "the CLI and the server may be of different versions: skiff version", Err: err}
	}
	return nil
}

func appPath(app string, rest ...string) string {
	p := "/v1/apps/" + url.PathEscape(app)
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

// WhoAmI says whose token the client holds.
func (c *Client) WhoAmI(ctx context.Context) (skiff.WhoAmI, error) {
	var w skiff.WhoAmI
	return w, c.call(ctx, "GET", "/v1/whoami", nil, &w)
}

// Apps lists the apps.
func (c *Client) Apps(ctx context.Context) ([]skiff.AppInfo, error) {
	var apps []skiff.AppInfo
	return apps, c.call(ctx, "GET", "/v1/apps", nil, &apps)
}

// CreateApp creates an app.
func (c *Client) CreateApp(ctx context.Context, name string) (skiff.AppInfo, error) {
	var info skiff.AppInfo
	return info, c.call(ctx, "POST", "/v1/apps", skiff.CreateAppRequest{Name: name}, &info)
}

// App describes one app.
func (c *Client) App(ctx context.Context, name string) (skiff.AppInfo, error) {
	var info skiff.AppInfo
	return info, c.call(ctx, "GET", appPath(name), nil, &info)
}

// DestroyApp deletes an app and everything it has.
func (c *Client) DestroyApp(ctx context.Context, name string) error {
	resp, err := c.request(ctx, "DELETE", appPath(name), url.Values{"confirm": {name}}, nil, "")
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Deploy uploads a gzipped tar of an app's source and builds and releases
// it, calling onLine with each line of output as it comes. It returns the
// stream's result; a failed build or release is an error of kind failed.
func (c *Client) Deploy(ctx context.Context, app string, source io.Reader, description string, onLine func(string)) (skiff.StreamMessage, error) {
	q := url.Values{}
	if description != "" {
		q.Set("description", description)
	}
	resp, err := c.request(ctx, "POST", appPath(app, "deploys"), q, LocalBody(source), "application/gzip")
	if err != nil {
		return skiff.StreamMessage{}, err
	}
	defer resp.Body.Close()
	return readStream(resp.Body, onLine,
		func(err error) error {
			return &skiff.Error{Kind: skiff.KindInternal, Message: "unreadable deploy output", Err: err}
		},
		func(err error) error {
			return &skiff.Error{Kind: skiff.KindUnavailable, Message: "the deploy's output stopped before its result",
				Hint: "the server may have restarted; skiff releases -a " + app + " shows whether a release was made", Err: err}
		})
}

// readStream reads an answer of NDJSON StreamMessages, calling onLine
// with each line, and returns the result; an error message is a
// *skiff.Error. What is not a message is unreadable's error; an answer
// that stops before its result is stopped's, given why it stopped
// (io.ErrUnexpectedEOF when it ended cleanly).
func readStream(body io.Reader, onLine func(string), unreadable, stopped func(error) error) (skiff.StreamMessage, error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var m skiff.StreamMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return m, unreadable(err)
		}
		switch m.Type {
		case "line":
			if onLine != nil {
				onLine(m.Line)
			}
		case "result":
			return m, nil
		case "error":
			kind := m.Code
			if kind == "" {
				kind = skiff.KindFailed
			}
			return m, &skiff.Error{Kind: kind, Message: m.Error, Hint: m.Hint}
		}
	}
	err := sc.Err()
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return skiff.StreamMessage{}, stopped(err)
}

// upgrade sends a request that switches the connection to proto, and
// returns the answer and its connection. what names what the switch is
// for, in the error of an API that does not switch.
func (c *Client) upgrade(ctx context.Context, method, path string, body any, proto, what string) (*http.Response, io.ReadWriteCloser, error) {
	hdr := http.Header{"Connection": {"Upgrade"}, "Upgrade": {proto}}
	resp, err := c.requestWith(ctx, method, path, nil, body, "", hdr)
	if err != nil {
		return nil, nil, err
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if resp.StatusCode != http.StatusSwitchingProtocols || !ok {
		resp.Body.Close()
		return nil, nil, &skiff.Error{Kind: skiff.KindInternal, Message: "the API did not " + what + " (" + resp.Status + ")",
			Hint: "the CLI and the server may be of different versions: skiff version"}
	}
	return resp, rw, nil
}

// Config returns an app's config vars.
func (c *Client) Config(ctx context.Context, app string) (skiff.ConfigResponse, error) {
	var r skiff.ConfigResponse
	return r, c.call(ctx, "GET", appPath(app, "config"), nil, &r)
}

// ChangeConfig sets and unsets config vars in one change.
func (c *Client) ChangeConfig(ctx context.Context, app string, change skiff.ConfigChange) (skiff.ConfigResponse, error) {
	var r skiff.ConfigResponse
	return r, c.call(ctx, "PATCH", appPath(app, "config"), change, &r)
}

// Formation returns an app's process types and their quantities.
func (c *Client) Formation(ctx context.Context, app string) ([]skiff.FormationEntry, error) {
	var f []skiff.FormationEntry
	return f, c.call(ctx, "GET", appPath(app, "formation"), nil, &f)
}

// Scale sets the quantities of some process types.
func (c *Client) Scale(ctx context.Context, app string, req skiff.ScaleRequest) ([]skiff.FormationEntry, error) {
	var f []skiff.FormationEntry
	return f, c.call(ctx, "PATCH", appPath(app, "formation"), req, &f)
}

// Processes lists an app's instances.
func (c *Client) Processes(ctx context.Context, app string) ([]skiff.ProcessView, error) {
	var ps []skiff.ProcessView
	return ps, c.call(ctx, "GET", appPath(app, "ps"), nil, &ps)
}

// Restart restarts the instances of one process type, or of all when
// typ is empty.
func (c *Client) Restart(ctx context.Context, app, typ string) error {
	return c.call(ctx, "POST", appPath(app, "restart"), skiff.RestartRequest{Type: typ}, nil)
}

// Releases lists an app's releases, newest first.
func (c *Client) Releases(ctx context.Context, app string) ([]skiff.ReleaseView, error) {
	var rs []skiff.ReleaseView
	return rs, c.call(ctx, "GET", appPath(app, "releases"), nil, &rs)
}

// Release returns one release.
func (c *Client) Release(ctx context.Context, app string, version int) (skiff.ReleaseView, error) {
	var r skiff.ReleaseView
	return r, c.call(ctx, "GET", appPath(app, "releases", strconv.Itoa(version)), nil, &r)
}

// Rollback makes a new release from an earlier one's image and config;
// version 0 means the release before the current one.
func (c *Client) Rollback(ctx context.Context, app string, version int) (skiff.ReleaseView, error) {
	var r skiff.ReleaseView
	return r, c.call(ctx, "POST", appPath(app, "rollback"), skiff.RollbackRequest{Version: version}, &r)
}

// LogQuery selects log lines.
type LogQuery struct {
	Tail    int    // lines of history to send first; negative: the server's default
	Follow  bool   // keep streaming new lines
	Process string // web or web.1; empty for all
	Source  string // app, router or platform; empty for all
	Since   string // history from an age ago (1h) or a time (2026-11-24T10:00:00Z)
}

// Logs calls fn with each log line until the history is shown (or, when
// following, until ctx ends or fn returns an error).
func (c *Client) Logs(ctx context.Context, app string, q LogQuery, fn func(skiff.LogLine) error) error {
	v := url.Values{}
	if q.Tail >= 0 {
		v.Set("tail", strconv.Itoa(q.Tail))
	}
	if q.Since != "" {
		v.Set("since", q.Since)
	}
	if q.Follow {
		v.Set("follow", "true")
	}
	if q.Process != "" {
		v.Set("ps", q.Process)
	}
	if q.Source != "" {
		v.Set("source", q.Source)
	}
	resp, err := c.request(ctx, "GET", appPath(app, "logs"), v, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var l skiff.LogLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return &skiff.Error{Kind: skiff.KindInternal, Message: "unreadable log line", Err: err}
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return &skiff.Error{Kind: skiff.KindUnavailable, Message: "the log stream broke off", Hint: "run the command again", Err: err}
	}
	return nil
}

// Domains lists an app's custom domains.
func (c *Client) Domains(ctx context.Context, app string) ([]skiff.Domain, error) {
	var ds []skiff.Domain
	return ds, c.call(ctx, "GET", appPath(app, "domains"), nil, &ds)
}

// AddDomain routes a hostname to an app.
func (c *Client) AddDomain(ctx context.Context, app, hostname string) (skiff.Domain, error) {
	var d skiff.Domain
	return d, c.call(ctx, "POST", appPath(app, "domains"), skiff.DomainRequest{Hostname: hostname}, &d)
}

// RemoveDomain stops routing a hostname to an app.
func (c *Client) RemoveDomain(ctx context.Context, app, hostname string) error {
	return c.call(ctx, "DELETE", appPath(app, "domains", url.PathEscape(hostname)), nil, nil)
}

// Keys lists the SSH keys the caller may see.
func (c *Client) Keys(ctx context.Context) ([]skiff.Key, error) {
	var ks []skiff.Key
	return ks, c.call(ctx, "GET", "/v1/keys", nil, &ks)
}

// AddKey adds an SSH public key for the caller.
func (c *Client) AddKey(ctx context.Context, publicKey, name string) (skiff.Key, error) {
	var k skiff.Key
	return k, c.call(ctx, "POST", "/v1/keys", skiff.KeyRequest{PublicKey: publicKey, Name: name}, &k)
}

// RemoveKey removes a key named by its fingerprint or name.
func (c *Client) RemoveKey(ctx context.Context, ref string) error {
	return c.call(ctx, "DELETE", "/v1/keys/"+url.PathEscape(ref), nil, nil)
}

// CreateUser makes a user and returns its first API token.
func (c *Client) CreateUser(ctx context.Context, name string, admin bool) (skiff.UserToken, error) {
	var t skiff.UserToken
	return t, c.call(ctx, "POST", "/v1/users", skiff.UserRequest{Name: name, Admin: admin}, &t)
}

// HealthCheck returns the app's health check in effect.
func (c *Client) HealthCheck(ctx context.Context, app string) (skiff.HealthCheckView, error) {
	var v skiff.HealthCheckView
	err := c.call(ctx, "GET", appPath(app, "healthcheck"), nil, &v)
	return v, err
}

// SetHealthCheck sets the app's own health check path; an empty path
// removes it, leaving app.json's.
func (c *Client) SetHealthCheck(ctx context.Context, app, path string) (skiff.HealthCheckView, error) {
	var v skiff.HealthCheckView
	var err error
	if path == "" {
		err = c.call(ctx, "DELETE", appPath(app, "healthcheck"), nil, &v)
	} else {
		err = c.call(ctx, "PUT", appPath(app, "healthcheck"), skiff.HealthCheckChange{Path: path}, &v)
	}
	return v, err
}

// SetMaintenance turns an app's maintenance mode on or off.
func (c *Client) SetMaintenance(ctx context.Context, app string, enabled bool) (skiff.AppInfo, error) {
	var info skiff.AppInfo
	err := c.call(ctx, "PUT", appPath(app, "maintenance"), skiff.MaintenanceChange{Enabled: enabled}, &info)
	return info, err
}

// Certs lists an app's TLS certificates.
func (c *Client) Certs(ctx context.Context, app string) ([]skiff.CertView, error) {
	var out []skiff.CertView
	return out, c.call(ctx, "GET", appPath(app, "certs"), nil, &out)
}

// AddCert adds a TLS certificate for the app's domains it covers.
func (c *Client) AddCert(ctx context.Context, app, certPEM, keyPEM string) ([]skiff.CertView, error) {
	var out []skiff.CertView
	return out, c.call(ctx, "POST", appPath(app, "certs"), skiff.CertRequest{CertPEM: certPEM, KeyPEM: keyPEM}, &out)
}

// RemoveCert removes the certificate of one of the app's hostnames.
func (c *Client) RemoveCert(ctx context.Context, app, hostname string) error {
	return c.call(ctx, "DELETE", appPath(app, "certs", url.PathEscape(hostname)), nil, nil)
}

// RouterSettings returns an app's router settings.
func (c *Client) RouterSettings(ctx context.Context, app string) (skiff.RouterSettings, error) {
	var s skiff.RouterSettings
	return s, c.call(ctx, "GET", appPath(app, "router"), nil, &s)
}

// ChangeRouterSettings changes an app's router settings.
func (c *Client) ChangeRouterSettings(ctx context.Context, app string, ch skiff.RouterChange) (skiff.RouterSettings, error) {
	var s skiff.RouterSettings
	return s, c.call(ctx, "PATCH", appPath(app, "router"), ch, &s)
}

// Nodes lists the platform's nodes (admins only).
func (c *Client) Nodes(ctx context.Context) ([]skiff.NodeInfo, error) {
	var ns []skiff.NodeInfo
	return ns, c.call(ctx, "GET", "/v1/nodes", nil, &ns)
}

// DrainNode sets (or, with drain false, clears) a node's drain flag.
func (c *Client) DrainNode(ctx context.Context, name string, drain bool) (skiff.NodeInfo, error) {
	method := "PUT"
	if !drain {
		method = "DELETE"
	}
	var n skiff.NodeInfo
	return n, c.call(ctx, method, "/v1/nodes/"+url.PathEscape(name)+"/drain", nil, &n)
}

// RemoveNode forgets a node that no longer runs.
func (c *Client) RemoveNode(ctx context.Context, name string) error {
	return c.call(ctx, "DELETE", "/v1/nodes/"+url.PathEscape(name), nil, nil)
}

// Placement returns the node labels an app is pinned to.
func (c *Client) Placement(ctx context.Context, app string) (map[string]string, error) {
	var m map[string]string
	return m, c.call(ctx, "GET", appPath(app, "placement"), nil, &m)
}

// SetPlacement pins an app's instances to nodes with the labels.
func (c *Client) SetPlacement(ctx context.Context, app string, labels map[string]string) (map[string]string, error) {
	var m map[string]string
	return m, c.call(ctx, "PUT", appPath(app, "placement"), labels, &m)
}
