package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/testkit"
)

// TestTLS: two apps with certificates of their own domains, added with
// the CLI, served over HTTPS by SNI, over HTTP/1.1 and HTTP/2.
func TestTLS(t *testing.T) {
	tlsAddr := freePort(t)
	s := startServer(t, "--router-tls-addr", tlsAddr)
	ca := testkit.NewCA(t)
	dir := t.TempDir()
	for _, a := range []struct{ name, domain, certName string }{
		{"tlsone", "www.one.example", "www.one.example"},
		{"tlstwo", "api.two.example", "*.two.example"},
	} {
		s.ok("apps", "create", a.name)
		s.ok("deploy", app(t, "pyapp", nil), "-a", a.name)
		s.ok("domains", "add", "-a", a.name, a.domain)
		cert, key := ca.Issue(t, a.certName)
		certFile, keyFile := filepath.Join(dir, a.name+".crt"), filepath.Join(dir, a.name+".key")
		os.WriteFile(certFile, []byte(cert), 0o600)
		os.WriteFile(keyFile, []byte(key), 0o600)
		if out := s.ok("certs", "add", "-a", a.name, certFile, keyFile); !strings.Contains(out, "Added the certificate of "+a.domain) {
			t.Fatalf("certs add: %s", out)
		}
	}
	if out := s.ok("certs", "-a", "tlstwo"); !strings.Contains(out, "api.two.example") || !strings.Contains(out, "*.two.example") {
		t.Errorf("certs: %s", out)
	}
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: ca.Pool},
			ForceAttemptHTTP2: h2,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", tlsAddr)
			},
		}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		for _, a := range []struct{ host string }{{"www.one.example"}, {"api.two.example"}} {
			var proto int
			var body string
			eventually(t, 20*time.Second, "HTTPS for "+a.host, func() bool {
				resp, err := client.Get("https://" + a.host + "/")
				if err != nil {
					return false
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				proto, body = resp.ProtoMajor, string(b)
				return resp.StatusCode == 200
			})
			if (proto == 2) != h2 || !strings.Contains(body, "host="+a.host) {
				t.Errorf("%s (h2 %v): HTTP/%d %q", a.host, h2, proto, body)
			}
		}
	}
}
