// Package pyindex writes pure-Python wheels and serves them from a PEP 503
// package index on loopback, for tests and benchmarks of Python builds on
// machines that cannot reach PyPI. Wheels are written by hand (a wheel is
// a zip file with a dist-info directory), as the wheel package may not be
// installed.
package pyindex

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Package is one wheel: its name, version, requirements (Requires-Dist
// lines) and files (path under the wheel's root -> content; a file under
// DistInfo() such as entry_points.txt goes into its metadata).
type Package struct {
	Name, Version string
	Requires      []string
	Files         map[string]string
}

// Module is the package's name as Python imports it: _ for -.
func (p Package) Module() string { return strings.ReplaceAll(p.Name, "-", "_") }

// DistInfo is the wheel's metadata directory.
func (p Package) DistInfo() string { return fmt.Sprintf("%s-%s.dist-info", p.Module(), p.Version) }

// Filename is the wheel's file name.
func (p Package) Filename() string {
	return fmt.Sprintf("%s-%s-py3-none-any.whl", p.Module(), p.Version)
}

// project is the name normalised as PEP 503 says, for the index's pages.
func (p Package) project() string {
	return strings.ToLower(regexp.MustCompile(`[-_.]+`).ReplaceAllString(p.Name, "-"))
}

// Wheel writes the package as a py3-none-any wheel.
func (p Package) Wheel() []byte {
	info := p.DistInfo()
	files := map[string]string{}
	for name, body := range p.Files {
		files[name] = body
	}
	meta := fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", p.Name, p.Version)
	for _, r := range p.Requires {
		meta += "Requires-Dist: " + r + "\n"
	}
	files[info+"/METADATA"] = meta
	files[info+"/WHEEL"] = "Wheel-Version: 1.0\nGenerator: skiff-pyindex\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var record strings.Builder
	for _, n := range names {
		w, _ := zw.Create(n)
		w.Write([]byte(files[n]))
		sum := sha256.Sum256([]byte(files[n]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", n, base64.RawURLEncoding.EncodeToString(sum[:]), len(files[n]))
	}
	fmt.Fprintf(&record, "%s/RECORD,,\n", info)
	w, _ := zw.Create(info + "/RECORD")
	w.Write([]byte(record.String()))
	zw.Close()
	return buf.Bytes()
}

// Index is a running package index.
type Index struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits []string // paths requested since the last Take; guarded by mu
	all  int64    // guarded by mu
}

// Serve starts an index of the packages on a loopback port.
func Serve(pkgs ...Package) *Index {
	ix := &Index{}
	pages := map[string]string{}  // /simple/NAME/ -> page
	wheels := map[string][]byte{} // /files/FILE -> wheel
	for _, p := range pkgs {
		wheel := p.Wheel()
		sum := sha256.Sum256(wheel)
		wheels["/files/"+p.Filename()] = wheel
		pages["/simple/"+p.project()+"/"] += fmt.Sprintf("<a href=\"/files/%s#sha256=%s\">%s</a>\n", p.Filename(), hex.EncodeToString(sum[:]), p.Filename())
	}
	ix.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ix.mu.Lock()
		ix.hits = append(ix.hits, r.URL.Path)
		ix.all++
		ix.mu.Unlock()
		if page, ok := pages[r.URL.Path]; ok {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, "<html><body>\n%s</body></html>\n", page)
		} else if wheel, ok := wheels[r.URL.Path]; ok {
			w.Write(wheel)
		} else {
			http.NotFound(w, r)
		}
	}))
	return ix
}

// URL is the index's simple API, for PIP_INDEX_URL.
func (ix *Index) URL() string { return ix.srv.URL + "/simple/" }

// Requests counts the requests the index answered.
func (ix *Index) Requests() int64 {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.all
}

// Take returns the paths requested since the last call.
func (ix *Index) Take() []string {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	hits := ix.hits
	ix.hits = nil
	return hits
}

// Close stops the index.
func (ix *Index) Close() { ix.srv.Close() }
