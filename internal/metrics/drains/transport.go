package drains

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// A sender takes batches of lines to one receiver. send returns nil only
// when the receiver has the batch, as far as its protocol can tell; a
// failed batch is sent again, whole, by the caller. A sender is used by
// one goroutine.
type sender interface {
	send(ctx context.Context, b batch) error
	close()
}

// batch is lines sent together. id stays the same when the batch is sent
// again, so that a receiver may tell a repeat (Logplex-Frame-Id).
type batch struct {
	id    string
	lines []line
}

// newSender makes the sender of a drain URL (validated already).
func newSender(rawURL, token string, roots *x509.CertPool, timeout time.Duration) (sender, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "syslog":
		return &syslogSender{addr: u.Host, timeout: timeout}, nil
	case "syslog+tls":
		return &syslogSender{addr: u.Host, timeout: timeout,
			tls: &tls.Config{ServerName: u.Hostname(), RootCAs: roots, MinVersion: tls.VersionTLS12}}, nil
	case "https", "http":
		user := u.User
		u.User = nil
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		return &httpSender{url: u.String(), user: user, token: token,
			client: &http.Client{Transport: tr, Timeout: timeout}}, nil
	}
	return nil, fmt.Errorf("unknown drain scheme %q", u.Scheme)
}

// syslogSender writes frames on one TCP (or TLS) connection, made again
// when it breaks. A receiver never writes back: a read that returns
// means the receiver closed the connection, and it is not written to
// again, so that lines are not written into a connection already gone.
type syslogSender struct {
	addr    string
	tls     *tls.Config
	timeout time.Duration
	conn    net.Conn
	gone    *atomic.Bool // of conn
	buf     []byte
}

func (s *syslogSender) send(ctx context.Context, b batch) error {
	if s.conn != nil && s.gone.Load() {
		s.close()
	}
	if s.conn == nil {
		if err := s.dial(ctx); err != nil {
			return err
		}
	}
	s.buf = s.buf[:0]
	for _, l := range b.lines {
		s.buf = frame(s.buf, l, false)
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.timeout))
	if _, err := s.conn.Write(s.buf); err != nil {
		s.close()
		return fmt.Errorf("write to %s: %w", s.addr, err)
	}
	return nil
}

func (s *syslogSender) dial(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var conn net.Conn
	var err error
	if s.tls != nil {
		d := tls.Dialer{Config: s.tls}
		conn, err = d.DialContext(ctx, "tcp", s.addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", s.addr)
	}
	if err != nil {
		return fmt.Errorf("connect to %s: %w", s.addr, err)
	}
	gone := &atomic.Bool{}
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		gone.Store(true)
	}()
	s.conn, s.gone = conn, gone
	return nil
}

func (s *syslogSender) close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// httpSender POSTs each batch as Heroku's HTTPS drains do: a body of
// octet-counted syslog frames, Content-Type application/logplex-1, the
// count in Logplex-Msg-Count and the batch's ID in Logplex-Frame-Id.
type httpSender struct {
	url    string
	user   *url.Userinfo
	token  string
	client *http.Client
}

func (h *httpSender) send(ctx context.Context, b batch) error {
	var body []byte
	for _, l := range b.lines {
		body = frame(body, l, true)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/logplex-1")
	req.Header.Set("Logplex-Msg-Count", strconv.Itoa(len(b.lines)))
	req.Header.Set("Logplex-Frame-Id", b.id)
	req.Header.Set("Logplex-Drain-Token", h.token)
	req.Header.Set("User-Agent", "Skiff-Logplex/1")
	if h.user != nil {
		pass, _ := h.user.Password()
		req.SetBasicAuth(h.user.Username(), pass)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("POST: %w", unwrapURL(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the receiver answered %s", resp.Status)
	}
	return nil
}

func (h *httpSender) close() { h.client.CloseIdleConnections() }

func unwrapURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
