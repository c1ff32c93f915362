package sshd

import (
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	for cmd, want := range map[string]string{
		"git-receive-pack '/shop.git'":  "git-receive-pack shop",
		"git-receive-pack 'shop.git'":   "git-receive-pack shop",
		"git-upload-pack '/shop'":       "git-upload-pack shop",
		"git-upload-pack '~/shop.git/'": "git-upload-pack shop",
		"git-upload-archive \"shop\"":   "git-upload-archive shop",
	} {
		verb, app, err := parseCommand(cmd)
		if err != nil || verb+" "+app != want {
			t.Errorf("parseCommand(%q) = %q %q %v, want %q", cmd, verb, app, err, want)
		}
	}
	for cmd, msg := range map[string]string{
		"ls -la":                           "git push and git clone only",
		"git-receive-pack '/../etc.git'":   "does not name an app",
		"git-receive-pack '/a/b.git'":      "does not name an app",
		"bash -c 'git-receive-pack x.git'": "git push and git clone only",
	} {
		if _, _, err := parseCommand(cmd); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("parseCommand(%q) = %v, want an error with %q", cmd, err, msg)
		}
	}
}
