package build_test

import (
	"os"
	"testing"

	"github.com/skiff-paas/skiff/internal/isolate"
)

func TestMain(m *testing.M) {
	// Isolated builds run each command in a sandbox, whose wrapper and
	// first process are this test binary again.
	if code, ok := isolate.Init(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}
