package service

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// engine is what differs between the kinds of server.
type engine interface {
	// prepare readies the volume for a start of s's server (first-time
	// setup, the config files the platform owns) and returns the
	// server's command line. Output of the tools it runs goes to out.
	prepare(ctx context.Context, s *server, password []byte, out *os.File) ([]string, error)
	// ready asks the running server once whether it answers with the
	// password, and what its role is; a refusedError says
	// it answers but refuses the password.
	ready(ctx context.Context, s *server, password []byte) (role string, err error)
	// stopSignal asks the server to stop cleanly.
	stopSignal() syscall.Signal
	// pidFile is where the server records its pid in the volume dir.
	pidFile(dir string) string
	// command is the name of the server's program in /proc/PID/comm.
	command() string
}

// promoter is an engine that can turn a running replica into a primary
// without a restart.
type promoter interface {
	promote(ctx context.Context, s *server, password []byte) (role string, err error)
}

var (
	_ engine   = postgres{}
	_ engine   = redisEngine{}
	_ promoter = redisEngine{}
)

func engineFor(kind string) (engine, error) {
	switch kind {
	case skiff.AddonPostgres:
		return postgres{}, nil
	case skiff.AddonRedis:
		return redisEngine{}, nil
	}
	return nil, fmt.Errorf("unknown kind of service %q: it must be %s or %s", kind, skiff.AddonPostgres, skiff.AddonRedis)
}
