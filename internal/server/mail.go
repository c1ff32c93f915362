package server

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/skiff-paas/skiff/internal/metrics/webhooks"
)

// mailer is the SMTP relay alerts are emailed through, or nil when none
// is configured.
func mailer(cfg Config) (*webhooks.Mailer, error) {
	if cfg.SMTPAddr == "" {
		if cfg.SMTPFrom != "" || cfg.SMTPUser != "" {
			return nil, errors.New("--smtp-from and --smtp-user need --smtp-addr: the relay to send alerts' emails through, e.g. smtp.example.com:587")
		}
		return nil, nil
	}
	if cfg.SMTPFrom == "" {
		return nil, errors.New("--smtp-addr needs --smtp-from: the address alerts' emails come from, e.g. skiff@example.com")
	}
	m := &webhooks.Mailer{Addr: cfg.SMTPAddr, From: cfg.SMTPFrom, User: cfg.SMTPUser}
	if !strings.Contains(cfg.SMTPAddr, ":") {
		return nil, fmt.Errorf("--smtp-addr %q: give host:port, e.g. smtp.example.com:587", cfg.SMTPAddr)
	}
	if cfg.SMTPPasswordFile != "" {
		b, err := os.ReadFile(cfg.SMTPPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("--smtp-password-file: %w", err)
		}
		m.Password = strings.TrimSpace(string(b))
	} else if cfg.SMTPUser != "" {
		return nil, errors.New("--smtp-user needs --smtp-password-file: a file holding the relay's password")
	}
	return m, nil
}
