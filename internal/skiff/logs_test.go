package skiff

import (
	"strings"
	"testing"
	"time"
)

func TestParseAge(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		out  string
	}{
		{"7d", 7 * 24 * time.Hour, "7d"},
		{"2w", 14 * 24 * time.Hour, "14d"},
		{"1d12h", 36 * time.Hour, "1d12h"},
		{"36h", 36 * time.Hour, "1d12h"},
		{"90m", 90 * time.Minute, "1h30m"},
		{"30s", 30 * time.Second, "30s"},
		{" 1H ", time.Hour, "1h"},
	} {
		got, err := ParseAge(tc.in)
		if err != nil || got != tc.want || FormatAge(got) != tc.out {
			t.Errorf("ParseAge(%q) = %s (%s), %v; want %s (%s)", tc.in, got, FormatAge(got), err, tc.want, tc.out)
		}
	}
	for _, bad := range []string{"", "0", "0d", "d", "7x", "-1h", "1.5d", "99999d"} {
		if _, err := ParseAge(bad); err == nil || KindOf(err) != KindInvalid {
			t.Errorf("ParseAge(%q) = %v, want an invalid error", bad, err)
		}
	}
}

func TestValidateDrainURL(t *testing.T) {
	for _, ok := range []string{"syslog://logs.example.com:514", "syslog+tls://127.0.0.1:6514",
		"https://u:p@logs.example.com/skiff?x=1", "http://10.0.0.1:8080/"} {
		if err := ValidateDrainURL(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for bad, says := range map[string]string{
		"syslog://logs.example.com":          "no port",
		"syslog://logs.example.com:99999":    "invalid port",
		"syslog://u@logs.example.com:514":    "only syslog://HOST:PORT",
		"syslog+tls://h:514/path":            "only syslog+tls://HOST:PORT",
		"ftp://logs.example.com/":            "unknown drain URL scheme",
		"https:///path":                      "no host",
		"logs.example.com:514":               "unknown drain URL scheme",
		"https://logs.example.com/\x7f":      "invalid drain URL",
		"syslog+tcp://logs.example.com:514/": "unknown drain URL scheme",
	} {
		err := ValidateDrainURL(bad)
		if err == nil || KindOf(err) != KindInvalid || !strings.Contains(err.Error(), says) {
			t.Errorf("ValidateDrainURL(%q) = %v, want %q", bad, err, says)
		}
	}
	if got := RedactURL("https://u:secret@h/p"); got != "https://u:xxxxx@h/p" {
		t.Errorf("RedactURL = %s", got)
	}
}
