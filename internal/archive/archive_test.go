package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func TestWriteExtractRoundTrip(t *testing.T) {
	src := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "bin"), 0o755))
	must(t, os.MkdirAll(filepath.Join(src, ".git", "objects"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "Procfile"), []byte("web: bin/run\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "bin", "run"), []byte("#!/bin/sh\n"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, ".git", "HEAD"), []byte("ref"), 0o644))
	must(t, os.Symlink("bin/run", filepath.Join(src, "run")))

	var buf bytes.Buffer
	st, err := Write(&buf, src)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 4 {
		t.Fatalf("wrote %d entries, want 4 (no .git)", st.Files)
	}
	dst := t.TempDir()
	if _, err := Extract(bytes.NewReader(buf.Bytes()), dst, Limits{}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dst, "bin", "run"))
	if err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Fatalf("bin/run = %v, %v; want an executable file", fi, err)
	}
	if target, err := os.Readlink(filepath.Join(dst, "run")); err != nil || target != "bin/run" {
		t.Fatalf("link run -> %q, %v", target, err)
	}
	if _, err := os.Stat(filepath.Join(dst, ".git")); !os.IsNotExist(err) {
		t.Fatal(".git was uploaded")
	}
}

type ent struct {
	name, link string
	typ        byte
	body       string
}

func build(t *testing.T, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range ents {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Mode: 0o644, Size: int64(len(e.body))}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		must(t, tw.WriteHeader(hdr))
		if typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	must(t, tw.Close())
	must(t, gz.Close())
	return buf.Bytes()
}

func TestCheckRejects(t *testing.T) {
	sym := func(name, target string) ent { return ent{name: name, link: target, typ: tar.TypeSymlink} }
	tests := []struct {
		name string
		ents []ent
		lim  Limits
		kind skiff.Kind
		msg  string
	}{
		{"dotdot", []ent{{name: "../etc/passwd"}}, Limits{}, skiff.KindInvalid, "escapes the app's root"},
		{"dotdot inside", []ent{{name: "a/../../x"}}, Limits{}, skiff.KindInvalid, "escapes"},
		{"dotdot component", []ent{{name: "a/../x"}}, Limits{}, skiff.KindInvalid, `contains ".."`},
		{"absolute", []ent{{name: "/etc/passwd"}}, Limits{}, skiff.KindInvalid, "absolute path"},
		{"absolute link", []ent{sym("l", "/etc/passwd")}, Limits{}, skiff.KindInvalid, "points outside"},
		{"link up", []ent{sym("a/l", "../../etc")}, Limits{}, skiff.KindInvalid, "points outside"},
		// Each link alone stays inside; followed together they leave.
		{"chained links", []ent{{name: "d/", typ: tar.TypeDir}, sym("d/up", ".."), sym("d/esc", "up/..")}, Limits{}, skiff.KindInvalid, `"d/esc" points outside`},
		{"loop", []ent{sym("a", "b"), sym("b", "a")}, Limits{}, skiff.KindInvalid, "loop"},
		{"file through link", []ent{sym("l", "."), {name: "l/x"}}, Limits{}, skiff.KindInvalid, "under the symbolic link"},
		{"hard link", []ent{{name: "a"}, {name: "b", link: "a", typ: tar.TypeLink}}, Limits{}, skiff.KindInvalid, "hard link"},
		{"device", []ent{{name: "dev", typ: tar.TypeChar}}, Limits{}, skiff.KindInvalid, "special file"},
		{"duplicate", []ent{{name: "a"}, {name: "a"}}, Limits{}, skiff.KindInvalid, "twice"},
		{"too many bytes", []ent{{name: "a", body: strings.Repeat("x", 100)}}, Limits{MaxBytes: 10}, skiff.KindTooLarge, "unpacks to more than"},
		{"too many files", []ent{{name: "a"}, {name: "b"}}, Limits{MaxFiles: 1}, skiff.KindTooLarge, "more than 1 entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Check(bytes.NewReader(build(t, tt.ents...)), tt.lim)
			if err == nil {
				t.Fatal("accepted")
			}
			if skiff.KindOf(err) != tt.kind || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v (%s), want kind %s containing %q", err, skiff.KindOf(err), tt.kind, tt.msg)
			}
		})
	}
}

func TestCheckAcceptsLinksInside(t *testing.T) {
	sym := func(name, target string) ent { return ent{name: name, link: target, typ: tar.TypeSymlink} }
	data := build(t, ent{name: "x/y/z", body: "hi"}, sym("deep", "x/y"), sym("up", "deep/.."), sym("x/self", "."), sym("dangling", "not/there"))
	if _, err := Check(bytes.NewReader(data), Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Check(strings.NewReader("not a tarball"), Limits{}); skiff.KindOf(err) != skiff.KindInvalid {
		t.Fatalf("garbage: err = %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestDigestIsTheTreeNotTheArchive(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o644)
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "run"), []byte("#!/bin/sh\n"), 0o755)
	digest := func() string {
		var buf bytes.Buffer
		if _, err := Write(&buf, dir); err != nil {
			t.Fatal(err)
		}
		st, err := Check(&buf, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return st.Digest
	}
	first := digest()
	// A new modification time changes the archive, not the tree.
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(dir, "a.txt"), later, later)
	if again := digest(); again != first {
		t.Fatalf("digest changed with a file's time: %s, %s", first, again)
	}
	os.Chmod(filepath.Join(dir, "a.txt"), 0o755)
	if d := digest(); d == first {
		t.Fatal("digest ignores the executable bit")
	}
	os.Chmod(filepath.Join(dir, "a.txt"), 0o644)
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("b"), 0o644)
	if d := digest(); d == first {
		t.Fatal("digest ignores contents")
	}
}
