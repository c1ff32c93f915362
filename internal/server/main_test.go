package server_test

import (
	"os"
	"testing"

	"github.com/skiff-paas/skiff/internal/isolate"
)

func TestMain(m *testing.M) {
	// As root, the agent's default driver starts sandboxes, whose first
	// process is this test binary again.
	if code, ok := isolate.Init(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}
