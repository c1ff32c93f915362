package router

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// ACME configures automatic certificates: a custom domain without a
// certificate of its own gets one from the ACME directory the first time
// a client asks for it over TLS, proven by the TLS-ALPN-01 challenge on
// the router's TLS port, and renewed before it expires. The account key
// and the certificates are kept in the bus, sealed, so that every router
// shares them.
type ACME struct {
	// DirectoryURL is the ACME directory, e.g. Let's Encrypt's
	// https://acme-v02.api.letsencrypt.org/directory.
	DirectoryURL string
	// Email is the account's contact, for the CA's expiry notices.
	Email string
	// HTTPClient talks to the directory (default: http.DefaultClient);
	// tests give one that trusts their CA.
	HTTPClient *http.Client
}

// newACME makes the certificate manager.
func (r *Router) newACME(cfg *ACME) {
	r.acme = &autocert.Manager{
		Prompt:      autocert.AcceptTOS,
		Cache:       busCache{r.st},
		HostPolicy:  r.acmePolicy,
		Email:       cfg.Email,
		RenewBefore: 30 * 24 * time.Hour,
		Client:      &acme.Client{DirectoryURL: cfg.DirectoryURL, HTTPClient: cfg.HTTPClient},
	}
}

// acmePolicy allows certificates for the custom domains of apps, by their
// exact names: not the platform's own APP.DOMAIN names, nor wildcards
// (which ACME can only prove by DNS).
func (r *Router) acmePolicy(_ context.Context, host string) error {
	if host == r.cfg.Domain || strings.HasSuffix(host, "."+r.cfg.Domain) {
		return errors.New("acme: not for names under the platform domain")
	}
	if r.table.Load().exact.get([]byte(host)) == nil {
		return errors.New("acme: " + host + " is not a domain of any app")
	}
	return nil
}

// isChallenge reports whether a handshake is the CA's TLS-ALPN-01
// challenge.
func isChallenge(hello *tls.ClientHelloInfo) bool {
	return slices.Contains(hello.SupportedProtos, acme.ALPNProto)
}

// busCache keeps the ACME client's files in the acme bucket, sealed.
type busCache struct{ st *store.Store }

// key maps autocert's names ("example.com+rsa", "acme_account+key") to
// bus keys, which may not hold "+".
func (busCache) key(name string) string { return base64.RawURLEncoding.EncodeToString([]byte(name)) }

func (c busCache) Get(ctx context.Context, name string) ([]byte, error) {
	sealed, _, err := c.st.ACME.Get(ctx, c.key(name))
	if errors.Is(err, skiff.ErrNotFound) {
		return nil, autocert.ErrCacheMiss
	}
	if err != nil {
		return nil, err
	}
	return c.st.Unseal(sealed)
}

func (c busCache) Put(ctx context.Context, name string, data []byte) error {
	sealed, err := c.st.Seal(data)
	if err != nil {
		return err
	}
	_, err = c.st.ACME.Put(ctx, c.key(name), sealed)
	return err
}

func (c busCache) Delete(ctx context.Context, name string) error {
	return c.st.ACME.Delete(ctx, c.key(name))
}
