package isolate

import "testing"

// TestShown: a symlink of /etc stays one when the sandbox shows where it
// leads; one that leads elsewhere (systemd-resolved's resolv.conf) is
// shown as the file it leads to.
func TestShown(t *testing.T) {
	for p, want := range map[string]bool{
		"/usr/share/zoneinfo/Etc/UTC":           true,
		"/usr":                                  true,
		"/etc/ssl/certs/ca-certificates.crt":    true,
		"/etc/alternatives/editor":              true,
		"/run/systemd/resolve/stub-resolv.conf": false,
		"/etc/resolvconf/run/resolv.conf":       false,
		"/etc/shadow":                           false,
		"/usrlocal/x":                           false,
		"/var/lib/skiff":                        false,
	} {
		if got := shown(p); got != want {
			t.Errorf("shown(%s) = %v, want %v", p, got, want)
		}
	}
}
