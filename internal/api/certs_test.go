package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/testkit"
)

// TestCerts: a certificate is stored for each of the app's domains it
// covers, with its key sealed; one for no domain of the app is refused.
func TestCerts(t *testing.T) {
	e := start(t)
	ca := testkit.NewCA(t)
	e.do("POST", "/v1/apps", map[string]string{"name": "shop"}, nil)
	for _, h := range []string{"www.shop.example", "api.shop.example"} {
		e.do("POST", "/v1/apps/shop/domains", skiff.DomainRequest{Hostname: h}, nil)
	}
	cert, key := ca.Issue(t, "*.shop.example")
	var added []skiff.CertView
	if code, _ := e.do("POST", "/v1/apps/shop/certs", skiff.CertRequest{CertPEM: cert, KeyPEM: key}, &added); code != 201 || len(added) != 2 {
		t.Fatalf("add = %d %+v", code, added)
	}
	stored, _, err := e.st.Certs.Get(t.Context(), "www.shop.example")
	if err != nil || stored.App != "shop" || string(stored.KeySealed) == key {
		t.Fatalf("stored %+v %v", stored, err)
	}
	other, otherKey := ca.Issue(t, "www.elsewhere.example")
	e.expect("POST", "/v1/apps/shop/certs", skiff.CertRequest{CertPEM: other, KeyPEM: otherKey}, http.StatusBadRequest, skiff.KindInvalid, "none of which is a domain of shop")
	e.expect("POST", "/v1/apps/shop/certs", skiff.CertRequest{CertPEM: cert, KeyPEM: otherKey}, http.StatusBadRequest, skiff.KindInvalid, "not a usable pair")
	var list []skiff.CertView
	e.do("GET", "/v1/apps/shop/certs", nil, &list)
	if len(list) != 2 || list[0].Hostname != "api.shop.example" {
		t.Fatalf("list %+v", list)
	}
	if code, _ := e.do("DELETE", "/v1/apps/shop/certs/api.shop.example", nil, nil); code != 204 {
		t.Fatalf("remove = %d", code)
	}
	// Removing a domain removes its certificate.
	e.do("DELETE", "/v1/apps/shop/domains/www.shop.example", nil, nil)
	e.do("GET", "/v1/apps/shop/certs", nil, &list)
	if len(list) != 0 {
		t.Fatalf("left %+v", list)
	}
}

// TestMetricsNeedAnAdmin: /metrics serves Prometheus's format to admins.
func TestMetricsNeedAnAdmin(t *testing.T) {
	e := start(t)
	req, _ := http.NewRequest("GET", e.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "go_goroutines") {
		t.Fatalf("metrics: %d %.200s", resp.StatusCode, b)
	}
	e.token = ""
	e.expect("GET", "/metrics", nil, http.StatusUnauthorized, skiff.KindUnauthorized, "")
}
