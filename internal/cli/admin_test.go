package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAdminExportImport(t *testing.T) {
	src := newWorld(t)
	src.login()
	src.ok("apps", "create", "shop")
	src.ok("config", "set", "-a", "shop", "GREETING=hola")

	dir := t.TempDir()
	file := filepath.Join(dir, "skiff.tar")
	_, errOut, code := run("admin", "export", "-o", file)
	if code != 0 || !strings.Contains(errOut, "Exported 1 app, 0 releases, 0 images (0 B), 1 app config, 1 API token to "+file) ||
		!strings.Contains(errOut, "keep it private") {
		t.Fatalf("export: exit %d, stderr %q", code, errOut)
	}
	info, err := os.Stat(file)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v, %v; want mode 0600", info.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*partial")); len(left) != 0 {
		t.Fatalf("partial files left: %v", left)
	}
	// To the standard output when it is not a terminal: the same file.
	out := src.ok("admin", "export")
	if !strings.HasPrefix(out, "manifest.json") {
		t.Fatalf("export to stdout starts with %q", out[:min(len(out), 40)])
	}

	// Redirected to a file: the file is made private.
	redirected := filepath.Join(dir, "redirected.tar")
	f, err := os.OpenFile(redirected, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var errBuf bytes.Buffer
	code = Main(NewRoot(), []string{"admin", "export"}, strings.NewReader(""), f, &errBuf)
	f.Close()
	if info, err := os.Stat(redirected); code != 0 || err != nil || info.Mode().Perm() != 0o600 || info.Size() < 1024 {
		t.Fatalf("export > file: exit %d, %v, %v, stderr %q", code, info, err, errBuf.String())
	}

	dst := newWorld(t)
	dst.login()
	damaged := filepath.Join(dir, "damaged.tar")
	data, _ := os.ReadFile(file)
	i := bytes.Index(data, []byte("hola"))
	data[i] = 'H'
	os.WriteFile(damaged, data, 0o600)
	dst.fails(ExitUsage, "does not match its checksum", "admin", "import", damaged)
	dst.fails(ExitUsage, "cannot read the export", "admin", "import", filepath.Join(dir, "nope.tar"))
	dst.fails(ExitUsage, "needs 1 more argument", "admin", "import")

	out = dst.ok("admin", "import", "--dry-run", file)
	if !strings.Contains(out, "is whole, and this installation can take it: 1 app") || !strings.Contains(out, "Nothing was written") {
		t.Fatalf("dry run said %q", out)
	}
	out = dst.ok("admin", "import", file)
	if !strings.Contains(out, "Imported 1 app, 0 releases") || !strings.Contains(out, "Apps: shop.") {
		t.Fatalf("import said %q", out)
	}
	if got := strings.TrimSpace(dst.ok("config", "get", "-a", "shop", "GREETING")); got != "hola" {
		t.Fatalf("config after import: %q", got)
	}
	dst.fails(ExitConflict, "already has app shop", "admin", "import", file)
}
