package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/skiff-paas/skiff/internal/server"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// logFlags adds the server's flags about logs to f; the returned func
// reads those that need parsing into cfg, once f is parsed.
func logFlags(f *pflag.FlagSet, cfg *server.LogsConfig) func() error {
	maxAge := f.String("log-max-age", "7d", "how long log lines are kept, and each app's default (skiff logs retention): 7d, 36h")
	maxSize := f.String("log-max-size", "1gb", "most bytes of log lines kept in all, all apps together")
	appMaxSize := f.String("log-app-max-size", "64mb", "most bytes of log lines each app keeps by default (skiff logs retention)")
	f.Float64Var(&cfg.Rate, "log-rate-limit", 200, "lines a second an app instance may log on average; more are dropped and counted (0: no limit)")
	f.IntVar(&cfg.Burst, "log-burst", 1000, "lines an app instance may log at once, above --log-rate-limit")
	f.StringVar(&cfg.DrainCA, "drain-ca", "", "PEM file of certificate authorities that log drains' TLS and HTTPS receivers are trusted by, besides the system's")
	f.IntVar(&cfg.DrainBuffer, "drain-buffer", 10000, "lines of a log drain that wait while its receiver fails; past that the oldest are dropped")
	f.DurationVar(&cfg.RetentionInterval, "log-retention-interval", 30*time.Second, "how often apps' logs are purged past their retention (for tests)")
	_ = f.MarkHidden("log-retention-interval")
	f.DurationVar(&cfg.DrainRetry, "drain-retry", 500*time.Millisecond, "first wait before a failed drain batch is sent again (for tests)")
	_ = f.MarkHidden("drain-retry")
	return func() error {
		var err error
		if cfg.MaxAge, err = skiff.ParseAge(*maxAge); err != nil {
			return fmt.Errorf("--log-max-age: %w", err)
		}
		if cfg.MaxSize, err = skiff.ParseByteSize(*maxSize); err != nil {
			return fmt.Errorf("--log-max-size: %w", err)
		}
		if cfg.AppMaxSize, err = skiff.ParseByteSize(*appMaxSize); err != nil {
			return fmt.Errorf("--log-app-max-size: %w", err)
		}
		if cfg.AppMaxSize > cfg.MaxSize {
			return fmt.Errorf("--log-app-max-size %s is more than --log-max-size %s", *appMaxSize, *maxSize)
		}
		if cfg.Rate < 0 || cfg.Burst < 0 {
			return fmt.Errorf("--log-rate-limit and --log-burst are 0 or more")
		}
		return nil
	}
}
