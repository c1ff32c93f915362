package webhooks

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Mailer sends email through an SMTP server (a relay of the operator's).
type Mailer struct {
	// Addr is the server's host:port, e.g. smtp.example.com:587.
	Addr string
	// From is the sender's address.
	From string
	// User and Password, when User is set, log in with PLAIN auth, which
	// net/smtp allows only over TLS (STARTTLS, taken whenever the server
	// offers it) or to localhost.
	User, Password string
	// TLS configures STARTTLS (default: verify the server as Addr's host).
	TLS *tls.Config
	// Timeout bounds one message (default 30 s).
	Timeout time.Duration
}

// Send sends one plain-text message to every address of to.
func (m *Mailer) Send(ctx context.Context, to []string, subject, body string) error {
	if m == nil || m.Addr == "" {
		return errors.New("no SMTP server: start skiff server with --smtp-addr and --smtp-from")
	}
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host, _, err := net.SplitHostPort(m.Addr)
	if err != nil {
		return fmt.Errorf("smtp address %q: %w", m.Addr, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.Addr)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp: %w", err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := m.TLS
		if cfg == nil {
			cfg = &tls.Config{ServerName: host}
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("smtp starttls: %w", err)
		}
	}
	if m.User != "" {
		if err := c.Auth(smtp.PlainAuth("", m.User, m.Password, host)); err != nil {
			return fmt.Errorf("smtp auth: %w", err)
		}
	}
	if err := c.Mail(m.From); err != nil {
		return fmt.Errorf("smtp from %s: %w", m.From, err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt); err != nil {
			return fmt.Errorf("smtp to %s: %w", rcpt, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp data: %w", err)
	}
	if _, err := w.Write(message(m.From, to, subject, body, time.Now())); err != nil {
		return fmt.Errorf("smtp data: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp data: %w", err)
	}
	return c.Quit()
}

// message is an RFC 5322 message of plain text, lines ended by CRLF.
func message(from string, to []string, subject, body string, now time.Time) []byte {
	clean := func(s string) string { return strings.NewReplacer("\r", " ", "\n", " ").Replace(s) }
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\n", clean(from))
	fmt.Fprintf(&b, "To: %s\r\n", clean(strings.Join(to, ", ")))
	fmt.Fprintf(&b, "Subject: %s\r\n", clean(subject))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	// net/smtp's writer stuffs lines that start with a dot.
	for _, line := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		b.WriteString(line + "\r\n")
	}
	return []byte(b.String())
}

// mailOf is the subject and body of the email about ev.
func mailOf(ev skiff.Event) (subject, body string) {
	subject = "Skiff " + Summary(ev)
	var b strings.Builder
	b.WriteString(ev.Message + "\n\n")
	if ev.App != "" {
		fmt.Fprintf(&b, "App:   %s\n", ev.App)
	}
	if a := ev.Alert; a != nil {
		fmt.Fprintf(&b, "Alert: %s (%s)\n", a.Kind, a.State)
		if a.Node != "" {
			fmt.Fprintf(&b, "Node:  %s\n", a.Node)
		}
		if len(a.Apps) > 0 {
			fmt.Fprintf(&b, "Apps:  %s\n", strings.Join(a.Apps, ", "))
		}
		fmt.Fprintf(&b, "Since: %s\n", a.Since.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "Event: %s at %s\n", ev.Type, ev.Time.UTC().Format(time.RFC3339))
	b.WriteString("\nskiff alerts lists the alerts and their rules.\n")
	return subject, b.String()
}
