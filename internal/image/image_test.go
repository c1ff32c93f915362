package image

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestPackIsReproducibleAndUnpacks(t *testing.T) {
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Fatal("mksquashfs is missing: run make deps (squashfs-tools)")
	}
	ctx := context.Background()
	tree := func() string {
		d := t.TempDir()
		os.MkdirAll(filepath.Join(d, "bin"), 0o700)
		os.WriteFile(filepath.Join(d, "Procfile"), []byte("web: bin/run\n"), 0o600)
		os.WriteFile(filepath.Join(d, "bin", "run"), []byte("#!/bin/sh\necho hi\n"), 0o700)
		os.Symlink("bin/run", filepath.Join(d, "run"))
		return d
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.sqfs"), filepath.Join(dir, "b.sqfs")
	if err := Pack(ctx, tree(), a); err != nil {
		t.Fatal(err)
	}
	if err := Pack(ctx, tree(), b); err != nil {
		t.Fatal(err)
	}
	da, size, err := Digest(a)
	if err != nil || size == 0 {
		t.Fatal(err)
	}
	db, _, _ := Digest(b)
	if da != db {
		t.Fatalf("the same tree packed twice gave %s and %s", da, db)
	}

	cache, err := NewCache(filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.Add(a, da); err != nil {
		t.Fatal(err)
	}
	root, err := cache.Unpacked(ctx, da)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(root, "bin", "run"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("bin/run = %v, %v; want mode 0755 (readable by the app user)", fi, err)
	}
	if data, _ := os.ReadFile(filepath.Join(root, "Procfile")); string(data) != "web: bin/run\n" {
		t.Fatalf("Procfile = %q", data)
	}
}

func TestFetchVerifiesDigest(t *testing.T) {
	ctx := context.Background()
	cache, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("image bytes")
	src := filepath.Join(t.TempDir(), "img")
	os.WriteFile(src, content, 0o644)
	digest, _, _ := Digest(src)
	calls := 0
	open := func(data []byte) func(context.Context) (io.ReadCloser, error) {
		return func(context.Context) (io.ReadCloser, error) {
			calls++
			return io.NopCloser(bytes.NewReader(data)), nil
		}
	}
	if _, err := cache.Fetch(ctx, digest, open([]byte("tampered"))); err == nil || !strings.Contains(err.Error(), "mismatch") {
		t.Fatalf("tampered download: err = %v", err)
	}
	p, err := cache.Fetch(ctx, digest, open(content))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Fetch(ctx, digest, open(content)); err != nil || calls != 2 {
		t.Fatalf("cached image fetched again: %d downloads, %v", calls, err)
	}
	if data, _ := os.ReadFile(p); !bytes.Equal(data, content) {
		t.Fatal("cached image differs")
	}
	if _, err := cache.Fetch(ctx, "md5:abc", open(content)); err == nil {
		t.Fatal("a malformed digest was accepted")
	}
}
