package router

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/net/http2"

	"github.com/skiff-paas/skiff/internal/netx"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// TLS: the router terminates TLS on its TLS address with the certificate
// of the name the client asks for (SNI): the certificate of that exact
// hostname, else of the wildcard domain over it. A client that offers
// HTTP/2 (ALPN h2) is served by golang.org/x/net/http2 with a proxy of
// net/http's (h2.go); HTTP/1.1 over TLS takes the router's own path, as
// plain HTTP does. Certificates come from the certs bucket, their keys sealed
// with the platform's secret key, so every router has them.

// certTable maps hostnames (as stored: *.example.com for a wildcard) to
// certificates. It is never changed once published.
type certTable map[string]*tls.Certificate

// certificate picks the certificate for a TLS handshake.
func (r *Router) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if r.acme != nil && isChallenge(hello) {
		return r.acme.GetCertificate(hello)
	}
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	t := *r.certs.Load()
	if c := t[name]; c != nil {
		return c, nil
	}
	if _, rest, ok := strings.Cut(name, "."); ok {
		if c := t["*."+rest]; c != nil {
			return c, nil
		}
	}
	if name == "" {
		return nil, errors.New("no server name (SNI) in the handshake")
	}
	if r.acme != nil {
		return r.acme.GetCertificate(hello)
	}
	return nil, fmt.Errorf("no certificate for %s", name)
}

// certView keeps the parsed certificates by key, so that a change parses
// only what changed.
type certView struct {
	parsed map[string]*tls.Certificate // by bucket key
	names  map[string]string           // bucket key -> hostname
}

// applyCert records a change of the certs bucket and returns the new
// table.
func (r *Router) applyCert(v *certView, c change) certTable {
	if c.deleted {
		delete(v.parsed, c.key)
		delete(v.names, c.key)
	} else {
		cert := c.value.(skiff.Cert)
		key, err := r.st.Unseal(cert.KeySealed)
		var pair tls.Certificate
		if err == nil {
			pair, err = tls.X509KeyPair([]byte(cert.CertPEM), key)
		}
		if err != nil {
			r.log.Error("unusable certificate", "hostname", cert.Hostname, "err", err)
			delete(v.parsed, c.key)
		} else {
			v.parsed[c.key] = &pair
			v.names[c.key] = cert.Hostname
		}
	}
	t := make(certTable, len(v.parsed))
	for k, p := range v.parsed {
		t[v.names[k]] = p
	}
	return t
}

// tlsConfig is the router's TLS configuration.
func (r *Router) tlsConfig() *tls.Config {
	protos := []string{"h2", "http/1.1"}
	if r.acme != nil {
		protos = append(protos, acme.ALPNProto)
	}
	return &tls.Config{
		GetCertificate: r.certificate,
		NextProtos:     protos,
		MinVersion:     tls.VersionTLS12,
	}
}

// acceptTLS serves every connection the TLS listener takes.
func (r *Router) acceptTLS() error {
	cfg := r.tlsConfig()
	for {
		c, err := r.tlsListener.Accept()
		if err != nil {
			if r.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		go r.serveTLS(tls.Server(netx.Raw(c), cfg))
	}
}

// serveTLS completes the handshake and serves the connection over
// HTTP/2 or HTTP/1.1, as the client chose.
func (r *Router) serveTLS(c *tls.Conn) {
	c.SetDeadline(time.Now().Add(headTimeout))
	if err := c.Handshake(); err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	switch c.ConnectionState().NegotiatedProtocol {
	case acme.ALPNProto:
		c.Close() // the CA's challenge ends with the handshake
		return
	case "h2":
	default:
		r.serveConn(c, true)
		return
	}
	if !r.trackH2(c, true) {
		c.Close()
		return
	}
	defer r.trackH2(c, false)
	r.h2.ServeConn(c, &http2.ServeConnOpts{BaseConfig: r.h2Base, Handler: r.h2Base.Handler})
}

// trackH2 adds or removes an HTTP/2 connection from those being served.
func (r *Router) trackH2(c net.Conn, add bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if add {
		if r.closing.Load() {
			return false
		}
		r.h2conns[c] = struct{}{}
		r.served.Add(1)
		return true
	}
	delete(r.h2conns, c)
	r.served.Done()
	return true
}

// normalizeInto lower-cases host, without its port and trailing dot, into
// buf.
func normalizeInto(buf []byte, host []byte) []byte {
	if i := lastColon(host); i >= 0 {
		host = host[:i]
	}
	if n := len(host); n > 0 && host[n-1] == '.' {
		host = host[:n-1]
	}
	if len(host) > len(buf) {
		host = host[:len(buf)]
	}
	out := buf[:len(host)]
	for i, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// shutdownH2 asks HTTP/2 clients to go away once their streams end.
func (r *Router) shutdownH2(ctx context.Context) {
	if r.h2Base != nil {
		r.h2Base.Shutdown(ctx)
	}
}
