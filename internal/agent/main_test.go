package agent

import (
	"os"
	"testing"

	"github.com/skiff-paas/skiff/internal/isolate"
)

// testUID is the test app's user ID.
const testUID = 210500

func TestMain(m *testing.M) {
	if code, ok := isolate.Init(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// drivers are the drivers a test runs under: exec, and isolated when the
// tests run as root on a host with cgroups.
func drivers() []Driver {
	ds := []Driver{Exec{}}
	if os.Geteuid() == 0 && isolate.CgroupVersion() != "" {
		ds = append(ds, Isolated{})
	}
	return ds
}
