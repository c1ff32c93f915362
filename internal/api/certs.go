package api

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func certView(c skiff.Cert) skiff.CertView {
	return skiff.CertView{Hostname: c.Hostname, Names: c.Names, Issuer: c.Issuer, NotAfter: c.NotAfter, AddedAt: c.AddedAt}
}

func (a *API) listCerts(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	all, err := a.st.Certs.Values(r.Context(), "")
	if err != nil {
		writeError(w, err)
		return
	}
	out := []skiff.CertView{}
	for _, c := range all {
		if c.App == app.Name {
			out = append(out, certView(c))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Hostname < out[j].Hostname })
	writeJSON(w, http.StatusOK, out)
}

// addCert stores a certificate for every domain of the app it covers.
func (a *API) addCert(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req skiff.CertRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	pair, err := tls.X509KeyPair([]byte(req.CertPEM), []byte(req.KeyPEM))
	if err != nil {
		writeError(w, skiff.Errorf(skiff.KindInvalid, "give the certificate chain and its private key as PEM files",
			"the certificate and key are not a usable pair: %v", err))
		return
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		writeError(w, skiff.Errorf(skiff.KindInvalid, "give an X.509 certificate in PEM", "unreadable certificate: %v", err))
		return
	}
	if time.Now().After(leaf.NotAfter) {
		writeError(w, skiff.Errorf(skiff.KindInvalid, "renew it first", "the certificate expired on %s", leaf.NotAfter.Format(time.DateOnly)))
		return
	}
	domains, err := a.domainsOf(r.Context(), app.Name)
	if err != nil {
		writeError(w, err)
		return
	}
	names := make([]string, len(leaf.DNSNames))
	for i, n := range leaf.DNSNames {
		names[i] = strings.ToLower(n)
	}
	sealed, err := a.st.Seal([]byte(req.KeyPEM))
	if err != nil {
		writeError(w, err)
		return
	}
	out := []skiff.CertView{}
	now := time.Now().UTC()
	for _, d := range domains {
		if !covers(names, d.Hostname) {
			continue
		}
		c := skiff.Cert{Hostname: d.Hostname, App: app.Name, CertPEM: req.CertPEM, KeySealed: sealed, Names: names,
			Issuer: leaf.Issuer.String(), NotAfter: leaf.NotAfter.UTC(), AddedAt: now}
		if _, err := a.st.Certs.Put(r.Context(), skiff.DomainKey(d.Hostname), c); err != nil {
			writeError(w, err)
			return
		}
		out = append(out, certView(c))
	}
	if len(out) == 0 {
		writeError(w, skiff.Errorf(skiff.KindInvalid, "add the domain first: skiff domains add -a "+app.Name+" HOST",
			"the certificate is for %s, none of which is a domain of %s", strings.Join(names, ", "), app.Name))
		return
	}
	a.st.Emit(skiff.Event{App: app.Name, Type: skiff.EventCertAdded, Actor: tok.User,
		Message: "Certificate for " + strings.Join(names, ", ") + " added by " + tok.User})
	writeJSON(w, http.StatusCreated, out)
}

// covers reports whether a certificate for names is valid for host (a
// wildcard name covers one label; a wildcard host needs the same
// wildcard).
func covers(names []string, host string) bool {
	for _, n := range names {
		if n == host {
			return true
		}
		if suffix, ok := strings.CutPrefix(n, "*."); ok && !strings.HasPrefix(host, "*.") {
			if label, rest, ok := strings.Cut(host, "."); ok && label != "" && rest == suffix {
				return true
			}
		}
	}
	return false
}

func (a *API) removeCert(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, host, err := a.appHostname(r)
	if err != nil {
		writeError(w, err)
		return
	}
	c, _, err := a.st.Certs.Get(r.Context(), skiff.DomainKey(host))
	if errors.Is(err, skiff.ErrNotFound) || err == nil && c.App != app.Name {
		writeError(w, skiff.Errorf(skiff.KindNotFound, "skiff certs -a "+app.Name+" lists its certificates", "%s has no certificate for %s", app.Name, host))
		return
	}
	if err == nil {
		err = a.st.Certs.Delete(r.Context(), skiff.DomainKey(host))
	}
	if err != nil {
		writeError(w, err)
		return
	}
	a.st.Emit(skiff.Event{App: app.Name, Type: skiff.EventCertRemoved, Actor: tok.User,
		Message: "Certificate of " + host + " removed by " + tok.User})
	w.WriteHeader(http.StatusNoContent)
}
