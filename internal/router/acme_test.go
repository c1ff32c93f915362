package router

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/testkit"
)

// pebbleTool finds a program that scripts/setup.sh installs in bin/tools.
func pebbleTool(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "bin", "tools", name))
	if err == nil {
		if _, err = os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("%s is not installed: run scripts/setup.sh (make deps)", name)
	return ""
}

func freeAddrOf(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startPebble runs Let's Encrypt's ACME test server on loopback, with a
// DNS server answering 127.0.0.1 for every name, so that its TLS-ALPN-01
// challenges reach the router's TLS port. It returns the directory URL
// and an HTTP client that trusts the server.
func startPebble(t *testing.T, tlsPort string) (string, *http.Client) {
	tlsPortN, err := strconv.Atoi(tlsPort)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca := testkit.NewCA(t)
	cert, key := ca.Issue(t, "localhost")
	os.WriteFile(filepath.Join(dir, "cert.pem"), []byte(cert), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), []byte(key), 0o600)
	dns := freeAddrOf(t)
	listen := freeAddrOf(t)
	_, port, _ := net.SplitHostPort(listen)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": listen, "managementListenAddress": freeAddrOf(t),
		"certificate": filepath.Join(dir, "cert.pem"), "privateKey": filepath.Join(dir, "key.pem"),
		"httpPort": 1, "tlsPort": tlsPortN, "ocspResponderURL": "", "externalAccountBindingRequired": false,
	}}
	data, _ := json.Marshal(cfg)
	os.WriteFile(filepath.Join(dir, "pebble.json"), data, 0o600)

	run := func(name string, env []string, args ...string) {
		cmd := exec.Command(pebbleTool(t, name), args...)
		cmd.Env = append(os.Environ(), env...)
		out := &testkit.SyncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				t.Logf("%s:\n%s", name, out.String())
			}
		})
	}
	run("pebble-challtestsrv", nil, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dnsserver", dns,
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "", "-management", freeAddrOf(t))
	run("pebble", []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
		"-config", filepath.Join(dir, "pebble.json"), "-dnsserver", dns)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	url := "https://localhost:" + port + "/dir"
	eventually(t, func() bool {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	return url, client
}

// TestACME: a custom domain without a certificate gets one from an ACME
// server (Pebble, over TLS-ALPN-01 on the router's TLS port) the first
// time a client asks for it, kept sealed in the bus; names that are not
// custom domains get none.
func TestACME(t *testing.T) {
	e := start(t)
	tlsAddr := freeAddrOf(t)
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	dirURL, client := startPebble(t, tlsPort)
	r, err := New(Config{Addr: "127.0.0.1:0", TLSAddr: tlsAddr, Domain: "apps.test",
		ACME: &ACME{DirectoryURL: dirURL, Email: "ops@acme.example", HTTPClient: client}}, e.st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	eventually(t, r.Ready)

	e.route(t, "secure", upstream(t, "secure"), "/")
	e.st.Domains.Put(context.Background(), "www.secure.example", skiff.Domain{Hostname: "www.secure.example", App: "secure"})
	eventually(t, func() bool { return r.table.Load().lookup([]byte("www.secure.example")) != nil })

	var leaf []string
	var issuer string
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := tls.Dial("tcp", tlsAddr, &tls.Config{ServerName: "www.secure.example", InsecureSkipVerify: true})
		if err == nil {
			st := c.ConnectionState()
			leaf, issuer = st.PeerCertificates[0].DNSNames, st.PeerCertificates[0].Issuer.String()
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate from ACME within 60s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(leaf) != 1 || leaf[0] != "www.secure.example" || !strings.Contains(strings.ToLower(issuer), "pebble") {
		t.Fatalf("certificate for %v from %q", leaf, issuer)
	}
	keys, err := e.st.ACME.List(context.Background(), "")
	if err != nil || len(keys) < 2 { // the account key and the certificate
		t.Fatalf("acme bucket holds %d entries, %v", len(keys), err)
	}
	for _, k := range keys {
		if strings.Contains(string(k.Value), "PRIVATE KEY") {
			t.Fatal("a private key is stored unsealed")
		}
	}
	// The platform's own names and unknown names get no certificate.
	for _, name := range []string{"secure.apps.test", "unknown.example"} {
		if c, err := tls.Dial("tcp", tlsAddr, &tls.Config{ServerName: name, InsecureSkipVerify: true}); err == nil {
			c.Close()
			t.Errorf("a certificate for %s", name)
		}
	}
}
