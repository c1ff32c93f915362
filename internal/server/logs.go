package server

import (
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/skiff-paas/skiff/internal/metrics/drains"
	"github.com/skiff-paas/skiff/internal/metrics/logretention"
	"github.com/skiff-paas/skiff/internal/store"
)

// LogsConfig is what the server's flags say of logs (docs/logs.md).
type LogsConfig struct {
	// MaxAge and MaxSize bound the whole LOGS stream (default 7 days,
	// 1 GiB); MaxAge is also each app's default age, AppMaxSize its
	// default size (64 MiB).
	MaxAge              time.Duration
	MaxSize, AppMaxSize int64
	// RetentionInterval is how often apps' logs are purged past their
	// retention (30 s; a hidden flag shortens it for tests).
	RetentionInterval time.Duration
	// Rate is how many lines a second an app instance may log on
	// average, Burst how many at once (0: no limit).
	Rate  float64
	Burst int
	// DrainCA names a PEM file of certificate authorities that drains'
	// TLS and HTTPS receivers are trusted by, besides the system's.
	DrainCA string
	// DrainBuffer is how many lines of a drain wait for its receiver
	// (default 10000); DrainRetry the first wait before a failed batch is
	// sent again (500 ms, doubled up to 30 s).
	DrainBuffer int
	DrainRetry  time.Duration
}

// logRoles adds the metrics role's parts that keep logs: the janitor of
// apps' retention and the drains.
func logRoles(cfg Config, st *store.Store, roles map[string]role) error {
	j, err := logretention.New(logretention.Config{Node: cfg.NodeName, Interval: cfg.Logs.RetentionInterval,
		Logger: cfg.Logger}, st)
	if err != nil {
		return err
	}
	roles["logretention"] = j
	roots, err := drainRoots(cfg.Logs.DrainCA)
	if err != nil {
		return err
	}
	d, err := drains.New(drains.Config{Node: cfg.NodeName, RootCAs: roots, Buffer: cfg.Logs.DrainBuffer,
		RetryMin: cfg.Logs.DrainRetry, Logger: cfg.Logger}, st)
	if err != nil {
		return err
	}
	roles["drains"] = d
	return nil
}

// drainRoots are the system's certificate authorities and those of file.
func drainRoots(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--drain-ca: %w", err)
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("--drain-ca: no PEM certificate in %s", file)
	}
	return pool, nil
}
