package router

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/testkit"
)

func (e *env) cert(t *testing.T, ca *testkit.CA, app, host string, names ...string) {
	c, k := ca.Issue(t, names...)
	sealed, err := e.st.Seal([]byte(k))
	if err != nil {
		t.Fatal(err)
	}
	e.st.Domains.Put(context.Background(), skiff.DomainKey(host), skiff.Domain{Hostname: host, App: app})
	e.st.Certs.Put(context.Background(), skiff.DomainKey(host), skiff.Cert{Hostname: host, App: app, CertPEM: c, KeySealed: sealed, Names: names})
}

// TestTLSWithSNIAndHTTP2: two apps, each with a certificate of its own
// domain (one a wildcard), served over HTTPS by SNI, over HTTP/1.1 and
// HTTP/2.
func TestTLSWithSNIAndHTTP2(t *testing.T) {
	e := start(t)
	ca := testkit.NewCA(t)
	e.route(t, "one", upstream(t, "one"), "/")
	e.route(t, "two", upstream(t, "two"), "/")
	e.cert(t, ca, "one", "www.one.example", "www.one.example")
	e.cert(t, ca, "two", "*.two.example", "*.two.example")

	for _, proto := range []string{"http/1.1", "h2"} {
		client := &http.Client{Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: ca.Pool, NextProtos: []string{proto}},
			ForceAttemptHTTP2: proto == "h2",
			DialTLSContext:    nil,
		}}
		if proto == "http/1.1" {
			client.Transport.(*http.Transport).TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		for _, tc := range []struct{ host, want string }{{"www.one.example", "one"}, {"api.two.example", "two"}} {
			var resp *http.Response
			var body []byte
			eventually(t, func() bool {
				req, _ := http.NewRequest("GET", "https://"+tc.host+"/", nil)
				// Dial the router, whatever the name says.
				client.Transport.(*http.Transport).DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "tcp", e.r.TLSAddr())
				}
				r, err := client.Do(req)
				if err != nil {
					return false
				}
				defer r.Body.Close()
				resp, body = r, mustRead(r.Body)
				return true
			})
			wantMajor := 1
			if proto == "h2" {
				wantMajor = 2
			}
			if resp.ProtoMajor != wantMajor || !strings.HasPrefix(string(body), tc.want+" host="+tc.host) || !strings.Contains(string(body), "proto=https") {
				t.Errorf("%s %s: HTTP/%d %q", proto, tc.host, resp.ProtoMajor, body)
			}
			if got := resp.TLS.PeerCertificates[0].DNSNames[0]; got != "www.one.example" && got != "*.two.example" {
				t.Errorf("certificate for %s", got)
			}
		}
	}
	// A name with no certificate fails the handshake.
	_, err := tls.Dial("tcp", e.r.TLSAddr(), &tls.Config{RootCAs: ca.Pool, ServerName: "nothing.example"})
	if err == nil {
		t.Error("a handshake for a name without a certificate succeeded")
	}
}

func mustRead(r io.Reader) []byte {
	b, _ := io.ReadAll(r)
	return b
}
