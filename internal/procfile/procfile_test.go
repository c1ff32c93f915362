package procfile

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, in string
		want     map[string]string
		err      string
	}{
		{name: "simple", in: "web: ./server --port $PORT\nworker: ./worker\n",
			want: map[string]string{"web": "./server --port $PORT", "worker": "./worker"}},
		{name: "crlf and bom", in: "\xef\xbb\xbfweb: python3 app.py\r\n\r\nclock: ./clock\r\n",
			want: map[string]string{"web": "python3 app.py", "clock": "./clock"}},
		{name: "comments and colons in commands", in: "# the app\nweb: bash -c 'echo a:b'\n",
			want: map[string]string{"web": "bash -c 'echo a:b'"}},
		{name: "no colon", in: "web: ok\njust a command\n", err: "line 2"},
		{name: "bad type", in: "web server: ./x\n", err: `line 1: invalid process type "web server"`},
		{name: "empty command", in: "web:\n", err: `line 1: process type "web" has no command`},
		{name: "duplicate", in: "web: a\nweb: b\n", err: `line 2: process type "web" is defined twice`},
		{name: "empty", in: "# nothing\n\n", err: "defines no process types"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	if _, err := Parse(strings.NewReader("web: " + strings.Repeat("x", MaxSize))); err == nil {
		t.Fatal("an oversized Procfile was accepted")
	}
}
