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
		"ls -la":                           "serves git push, git clone and run APP -- COMMAND",
		"git-receive-pack '/../etc.git'":   "does not name an app",
		"git-receive-pack '/a/b.git'":      "does not name an app",
		"bash -c 'git-receive-pack x.git'": "serves git push, git clone and run APP -- COMMAND",
	} {
		if _, _, err := parseCommand(cmd); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("parseCommand(%q) = %v, want an error with %q", cmd, err, msg)
		}
	}
}

func TestParseRun(t *testing.T) {
	for cmd, want := range map[string][2]string{
		"run shop -- bash":                  {"shop", "bash"},
		"run shop":                          {"shop", "bash"},
		"run shop -- python manage.py x":    {"shop", "python manage.py x"},
		"run shop echo 'a  b'":              {"shop", "echo 'a  b'"},
		"run shop -- --version":             {"shop", "--version"},
		"  run   shop   --   ls -la /app  ": {"shop", "ls -la /app"},
	} {
		app, line, err := parseRun(cmd)
		if err != nil || app != want[0] || line != want[1] {
			t.Errorf("parseRun(%q) = %q, %q, %v; want %q", cmd, app, line, err, want)
		}
	}
	if _, _, err := parseRun("run"); err == nil {
		t.Error("run without an app was accepted")
	}
	if !isRun("run shop") || isRun("runner") || isRun("git-receive-pack 'run'") {
		t.Error("isRun")
	}
}
