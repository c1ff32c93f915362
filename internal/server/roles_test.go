package server

import (
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// roles are the directories, under internal/, of the roles' package
// trees. Roles never import each other (DESIGN.md, "Layout"): they share
// the domain types, the store and small packages named for what they
// are. Only this package, which wires the roles, and cmd/skiff import
// them all.
var roles = []string{"bus", "api", "sshd", "build", "scheduler", "cron", "agent", "router", "addons", "metrics"}

// knownRoleImports are the imports across roles that are allowed anyway,
// importer -> imported package, each with its reason. An entry no longer
// needed fails the test, so that the list only shrinks.
var knownRoleImports = map[string]string{
	// apitest is a test helper: it starts an API server over a real bus
	// (STYLE.md: real servers, not mocks), with bus's own test helper. It
	// is compiled into tests only.
	"internal/api/apitest -> internal/bus/bustest": "test helper",
}

// TestRolesImportNoRole checks that no package of the project but this
// one and cmd/skiff imports a role other than its own, in its non-test
// files. A shared package may not import a role either: a role would
// reach another one through it.
func TestRolesImportNoRole(t *testing.T) {
	root := filepath.Join("..", "..")
	module := modulePath(t, root)
	for _, role := range roles {
		if info, err := os.Stat(filepath.Join(root, "internal", role)); err != nil || !info.IsDir() {
			t.Errorf("role %s: no directory internal/%s; update roles", role, role)
		}
	}
	found, err := roleImports(root, module, roles)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range found {
		if _, ok := knownRoleImports[imp]; !ok {
			t.Errorf("%s: only internal/server and cmd/skiff import another role; move what both need to a package named for what it is", imp)
		}
	}
	for imp := range knownRoleImports {
		if !slices.Contains(found, imp) {
			t.Errorf("%s is gone: remove it from knownRoleImports", imp)
		}
	}
}

// TestRoleImportsFinds runs the check on a small tree, so that
// TestRolesImportNoRole cannot pass by finding nothing.
func TestRoleImportsFinds(t *testing.T) {
	root := t.TempDir()
	const module = "example.com/paas"
	files := map[string]string{
		"internal/router/static.go":     `import "example.com/paas/internal/build/buildpack"`,
		"internal/router/h2/h2.go":      `import ("fmt"; "example.com/paas/internal/router"; "example.com/paas/internal/skiff")`,
		"internal/router/x_test.go":     `import "example.com/paas/internal/agent"`,
		"internal/build/buildpack/b.go": `import "example.com/paas/internal/skiff"`,
		"internal/agent/a.go":           `import sh "example.com/paas/internal/shared"`,
		"internal/shared/s.go":          `import "example.com/paas/internal/buildx"`,
		"internal/deploy/d.go":          `import "example.com/paas/internal/agent"`,
		"internal/server/server.go":     `import ("example.com/paas/internal/agent"; "example.com/paas/internal/router")`,
		"internal/router/testdata/t.go": `import "example.com/paas/internal/agent"`,
	}
	for name, imports := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		src := "package " + filepath.Base(filepath.Dir(p)) + "\n\n" + imports + "\n"
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	found, err := roleImports(root, module, []string{"router", "build", "agent"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"internal/deploy -> internal/agent",
		"internal/router -> internal/build/buildpack",
	}
	if !slices.Equal(found, want) {
		t.Fatalf("found %q, want %q", found, want)
	}
}

// roleImports lists, as "importer -> imported" (paths relative to the
// module), the imports of role packages by the packages under
// root/internal of another role tree or of none, but internal/server.
// Test files and testdata are left out: tests may use other roles'
// test helpers.
func roleImports(root, module string, roles []string) ([]string, error) {
	roleOf := func(pkg string) string {
		for _, r := range roles {
			if pkg == "internal/"+r || strings.HasPrefix(pkg, "internal/"+r+"/") {
				return r
			}
		}
		return ""
	}
	seen := map[string]bool{}
	var found []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(filepath.Join(root, "internal"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		if pkg == "internal/server" {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, spec := range f.Imports {
			path, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			imported, ok := strings.CutPrefix(path, module+"/")
			if !ok {
				continue
			}
			if r := roleOf(imported); r != "" && r != roleOf(pkg) {
				if imp := pkg + " -> " + imported; !seen[imp] {
					seen[imp] = true
					found = append(found, imp)
				}
			}
		}
		return nil
	})
	slices.Sort(found)
	return found, err
}

// modulePath reads the module's path from root/go.mod.
func modulePath(t *testing.T, root string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	t.Fatal("go.mod names no module")
	return ""
}
