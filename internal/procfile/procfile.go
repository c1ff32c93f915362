// Package procfile parses Procfiles by Heroku's rules: one "type: command"
// per line, blank lines and lines starting with # ignored, a leading BOM
// and CRLF line ends tolerated. A bad line is reported with its number.
package procfile

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// MaxSize bounds a Procfile; no real one comes close.
const MaxSize = 64 << 10

// Parse reads a Procfile and returns its process types and commands.
func Parse(r io.Reader) (map[string]string, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read Procfile: %w", err)
	}
	if len(data) > MaxSize {
		return nil, skiff.Errorf(skiff.KindInvalid, "a Procfile lists one process type per line, e.g. web: ./server",
			"Procfile is larger than %d KiB", MaxSize>>10)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	procs := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), MaxSize)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(strings.TrimSuffix(sc.Text(), "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, cmd, ok := strings.Cut(line, ":")
		name, cmd = strings.TrimSpace(name), strings.TrimSpace(cmd)
		switch {
		case !ok:
			return nil, lineError(n, line, "expected \"type: command\"")
		case skiff.ValidateProcessType(name) != nil:
			return nil, lineError(n, line, fmt.Sprintf("invalid process type %q: use letters, digits, dashes and underscores", name))
		case cmd == "":
			return nil, lineError(n, line, fmt.Sprintf("process type %q has no command", name))
		case procs[name] != "":
			return nil, lineError(n, line, fmt.Sprintf("process type %q is defined twice", name))
		}
		procs[name] = cmd
	}
	if len(procs) == 0 {
		return nil, skiff.Errorf(skiff.KindInvalid, "add a line such as web: ./server",
			"Procfile defines no process types")
	}
	return procs, nil
}

func lineError(n int, line, why string) error {
	if len(line) > 80 {
		line = line[:77] + "..."
	}
	return skiff.Errorf(skiff.KindInvalid, "each line of a Procfile is \"type: command\", e.g. web: python3 server.py",
		"Procfile line %d: %s: %q", n, why, line)
}
