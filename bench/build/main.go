// Command build measures git push builds of the test apps of each shape
// (test/e2e/testdata: Go with a module dependency, Node.js with express,
// Python with a dependency from a package index on loopback, and a
// Procfile-only app), on a skiff server of its own:
//
//   - first build: a push to a new app, whose caches are empty, from the
//     start of git push to the first 200 of the new release;
//   - rebuild: a push after a one-line change to the same app.
//
// Every round uses a new app, so first builds really start cold (the Go
// modules and npm packages still come from their registries, as on a
// user's first push).
//
//	go run ./bench/build -skiff bin/skiff -n 5
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/skiff-paas/skiff/bench/benchutil"
	"github.com/skiff-paas/skiff/internal/pyindex"
)

// shape is a test app and the line a rebuild changes in it.
type shape struct {
	name, dir, file, old, new string
	config                    []string
}

func main() {
	bin := flag.String("skiff", "bin/skiff", "the skiff binary")
	n := flag.Int("n", 5, "rounds per app shape")
	only := flag.String("only", "", "comma-separated shapes to run (go,node,python,procfile)")
	flag.Parse()
	if err := run(*bin, *n, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(bin string, n int, only string) error {
	ix := pyindex.Serve(pyindex.Package{Name: "skiffgreet", Version: "1.0",
		Files: map[string]string{"skiffgreet/__init__.py": "def greet():\n    return 'greeted'\n"}})
	defer ix.Close()
	testdata, _ := filepath.Abs("test/e2e/testdata")
	shapes := []shape{
		{name: "go", dir: "goapp", file: "main.go", old: "hello from go", new: "hola from go"},
		{name: "node", dir: "nodeapp", file: "index.js", old: "hello from node", new: "hola from node"},
		{name: "python", dir: "pydeps", file: "server.py", old: "hello from python", new: "hola from python",
			config: []string{"PIP_INDEX_URL=" + ix.URL()}},
		{name: "procfile", dir: "pyapp", file: "server.py", old: "release=%s", new: "release:%s"},
	}
	s, err := benchutil.Start(bin)
	if err != nil {
		return err
	}
	defer s.Stop()
	if err := s.Key(); err != nil {
		return err
	}
	var summary []string
	for _, sh := range shapes {
		if only != "" && !strings.Contains(","+only+",", ","+sh.name+",") {
			continue
		}
		var first, rebuild []time.Duration
		for i := 0; i < n; i++ {
			f, r, err := round(s, sh, filepath.Join(testdata, sh.dir), i)
			if err != nil {
				return err
			}
			first, rebuild = append(first, f), append(rebuild, r)
			fmt.Printf("%-8s round %d: first build %v, rebuild %v\n", sh.name, i+1, f.Round(time.Millisecond), r.Round(time.Millisecond))
		}
		summary = append(summary, fmt.Sprintf("%-8s first build: %s\n%-8s rebuild:     %s", sh.name, benchutil.Stats(first), "", benchutil.Stats(rebuild)))
	}
	fmt.Println("\ngit push to the first 200 of the new release:")
	fmt.Println(strings.Join(summary, "\n"))
	return nil
}

// round pushes a new app of the shape, then a one-line change to it.
func round(s *benchutil.Server, sh shape, src string, i int) (first, rebuild time.Duration, err error) {
	app := fmt.Sprintf("%s-%d", sh.name, i)
	dir := filepath.Join(s.Dir, app)
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		return 0, 0, err
	}
	if _, err := s.CLI(dir, "apps", "create", app); err != nil {
		return 0, 0, err
	}
	if len(sh.config) > 0 {
		if _, err := s.CLI(dir, append([]string{"config", "set", "-a", app}, sh.config...)...); err != nil {
			return 0, 0, err
		}
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "first"}} {
		if _, err := s.Git(dir, args...); err != nil {
			return 0, 0, err
		}
	}
	push := func(release int) (time.Duration, error) {
		start := time.Now()
		if _, err := s.Git(dir, "push", "-q", s.GitURL(app), "main"); err != nil {
			return 0, err
		}
		return time.Since(start), s.WaitFor(app, fmt.Sprintf("v%d", release))
	}
	if first, err = push(1); err != nil {
		return 0, 0, err
	}
	p := filepath.Join(dir, sh.file)
	data, err := os.ReadFile(p)
	if err != nil {
		return 0, 0, err
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(data), sh.old, sh.new, 1)), 0o644); err != nil {
		return 0, 0, err
	}
	if _, err := s.Git(dir, "commit", "-q", "-am", "one line"); err != nil {
		return 0, 0, err
	}
	rebuild, err = push(2)
	return first, rebuild, err
}
