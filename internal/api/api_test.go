package api_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-paas/skiff/internal/api"
	"github.com/skiff-paas/skiff/internal/api/apitest"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

type env struct {
	t     *testing.T
	url   string
	st    *store.Store
	token string
}

func start(t *testing.T) *env {
	t.Helper()
	srv := apitest.Start(t, api.Config{Domain: "apps.test", RouterPort: 8080, MaxUpload: 4096})
	again, created, err := api.BootstrapAdmin(context.Background(), srv.Store, filepath.Join(srv.Dir, "admin.token"))
	if err != nil || created || again != srv.Token {
		t.Fatalf("second bootstrap made a new token: %v %v", created, err)
	}
	return &env{t: t, url: srv.URL, st: srv.Store, token: srv.Token}
}

// do sends a request and decodes a JSON answer into out, returning the
// status and, for errors, the error body.
func (e *env) do(method, path string, body any, out any) (int, skiff.APIError) {
	e.t.Helper()
	var r io.Reader
	ctype := "application/json"
	switch b := body.(type) {
	case nil:
	case []byte:
		r, ctype = bytes.NewReader(b), "application/gzip"
	default:
		data, _ := json.Marshal(b)
		r = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, e.url+path, r)
	req.Header.Set("Content-Type", ctype)
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var apiErr skiff.APIError
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(data, &apiErr); err != nil || apiErr.Error == "" || apiErr.Code == "" {
			e.t.Fatalf("%s %s: error body %q is not a JSON error", method, path, data)
		}
	} else if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: %v in %q", method, path, err, data)
		}
	}
	return resp.StatusCode, apiErr
}

func (e *env) expect(method, path string, body any, status int, code skiff.Kind, msg string) {
	e.t.Helper()
	got, apiErr := e.do(method, path, body, nil)
	if got != status || apiErr.Code != code || !strings.Contains(apiErr.Error, msg) || apiErr.Hint == "" && status >= 400 {
		e.t.Fatalf("%s %s = %d %+v; want %d %s containing %q with a hint", method, path, got, apiErr, status, code, msg)
	}
}

func TestAuth(t *testing.T) {
	e := start(t)
	tok := e.token
	e.token = ""
	e.expect("GET", "/v1/apps", nil, 401, skiff.KindUnauthorized, "no API token")
	e.token = "wrong"
	e.expect("GET", "/v1/apps", nil, 401, skiff.KindUnauthorized, "unknown API token")
	e.token = tok
	var who skiff.WhoAmI
	if code, _ := e.do("GET", "/v1/whoami", nil, &who); code != 200 || who.User != "admin" || !who.Admin {
		t.Fatalf("whoami = %d %+v", code, who)
	}
	e.token = ""
	var health map[string]any
	if code, _ := e.do("GET", "/healthz", nil, &health); code != 200 || health["status"] != "ok" {
		t.Fatalf("healthz without a token = %d %v", code, health)
	}
	e.expect("GET", "/v2/nothing", nil, 404, skiff.KindNotFound, "no such route")
}

func TestAppsLifecycleAndValidation(t *testing.T) {
	e := start(t)
	var info skiff.AppInfo
	if code, _ := e.do("POST", "/v1/apps", skiff.CreateAppRequest{Name: "shop"}, &info); code != 201 || info.URL != "http://shop.apps.test:8080" {
		t.Fatalf("create = %d %+v", code, info)
	}
	e.expect("POST", "/v1/apps", skiff.CreateAppRequest{Name: "shop"}, 409, skiff.KindConflict, "app shop already exists")
	e.expect("POST", "/v1/apps", skiff.CreateAppRequest{Name: "Bad_Name"}, 400, skiff.KindInvalid, `app name "Bad_Name" is invalid`)
	e.expect("POST", "/v1/apps", skiff.CreateAppRequest{Name: "api"}, 400, skiff.KindInvalid, "reserved")
	e.expect("POST", "/v1/apps", map[string]string{"nom": "x"}, 400, skiff.KindInvalid, "malformed request body")
	e.expect("GET", "/v1/apps/nope", nil, 404, skiff.KindNotFound, "no app named nope")

	var list []skiff.AppInfo
	if code, _ := e.do("GET", "/v1/apps", nil, &list); code != 200 || len(list) != 1 || list[0].Name != "shop" {
		t.Fatalf("list = %d %+v", code, list)
	}
	e.expect("DELETE", "/v1/apps/shop", nil, 400, skiff.KindInvalid, "destroying shop deletes")
	e.expect("DELETE", "/v1/apps/shop?confirm=other", nil, 400, skiff.KindInvalid, "destroying shop deletes")
	if code, _ := e.do("DELETE", "/v1/apps/shop?confirm=shop", nil, nil); code != 204 {
		t.Fatalf("destroy = %d", code)
	}
	e.expect("GET", "/v1/apps/shop", nil, 404, skiff.KindNotFound, "no app named shop")
}

func TestConfigScaleAndRollbackNeedARelease(t *testing.T) {
	e := start(t)
	e.do("POST", "/v1/apps", skiff.CreateAppRequest{Name: "shop"}, nil)
	var cr skiff.ConfigResponse
	if code, _ := e.do("PATCH", "/v1/apps/shop/config", skiff.ConfigChange{Set: map[string]string{"A": "1"}}, &cr); code != 200 || cr.Version != 1 || cr.Release != 0 {
		t.Fatalf("config set before any deploy = %d %+v; want no release", code, cr)
	}
	e.expect("PATCH", "/v1/apps/shop/config", skiff.ConfigChange{Set: map[string]string{"PORT": "1"}}, 400, skiff.KindInvalid, "set by the platform")
	e.expect("PATCH", "/v1/apps/shop/config", skiff.ConfigChange{Set: map[string]string{"1X": "1"}}, 400, skiff.KindInvalid, "invalid config var name")
	e.expect("PATCH", "/v1/apps/shop/config", skiff.ConfigChange{}, 400, skiff.KindInvalid, "no config vars")
	e.expect("PATCH", "/v1/apps/shop/formation", skiff.ScaleRequest{Quantity: map[string]int{"web": 1}}, 400, skiff.KindInvalid, "has no release running")
	e.expect("POST", "/v1/apps/shop/rollback", nil, 400, skiff.KindInvalid, "no running release")

	// With a running release, scale checks types and counts.
	sealed, _ := e.st.SealConfig(map[string]string{"A": "1"})
	e.st.Releases.Put(context.Background(), skiff.ReleaseKey("shop", 1), skiff.Release{App: "shop", Version: 1,
		Status: skiff.ReleaseSucceeded, Processes: map[string]string{"web": "./web"}, ConfigSealed: sealed})
	e.st.Apps.Update(context.Background(), "shop", func(a *skiff.App) error { a.Current = 1; return nil })
	e.expect("PATCH", "/v1/apps/shop/formation", skiff.ScaleRequest{Quantity: map[string]int{"worker": 1}}, 400, skiff.KindInvalid, `no process type "worker"`)
	e.expect("PATCH", "/v1/apps/shop/formation", skiff.ScaleRequest{Quantity: map[string]int{"web": -1}}, 400, skiff.KindInvalid, "invalid quantity -1")
	var f []skiff.FormationEntry
	if code, _ := e.do("PATCH", "/v1/apps/shop/formation", skiff.ScaleRequest{Quantity: map[string]int{"web": 2}}, &f); code != 200 || len(f) != 1 || f[0].Quantity != 2 || f[0].Size != "1x" {
		t.Fatalf("scale = %d %+v", code, f)
	}
	e.expect("PATCH", "/v1/apps/shop/formation", skiff.ScaleRequest{Size: map[string]string{"web": "3x"}}, 400, skiff.KindInvalid, `invalid process size "3x"`)
	if code, _ := e.do("PATCH", "/v1/apps/shop/formation", skiff.ScaleRequest{Size: map[string]string{"web": "2x"}}, &f); code != 200 || f[0].Quantity != 2 || f[0].Size != "2x" {
		t.Fatalf("resize = %d %+v", code, f)
	}
	if code, _ := e.do("PATCH", "/v1/apps/shop/config", skiff.ConfigChange{Set: map[string]string{"B": "2"}}, &cr); code != 200 || cr.Release != 2 {
		t.Fatalf("config set with a release = %d %+v; want release 2", code, cr)
	}
	// The same change again makes no release; but if an earlier try
	// stored the change and failed before its release (a bus failover),
	// trying again makes it.
	cr = skiff.ConfigResponse{}
	if code, _ := e.do("PATCH", "/v1/apps/shop/config", skiff.ConfigChange{Set: map[string]string{"B": "2"}}, &cr); code != 200 || cr.Release != 0 {
		t.Fatalf("the same config set again = %d %+v; want no release", code, cr)
	}
	e.st.UpdateConfig(context.Background(), "shop", func(vars map[string]string) error { vars["C"] = "3"; return nil })
	if code, _ := e.do("PATCH", "/v1/apps/shop/config", skiff.ConfigChange{Set: map[string]string{"C": "3"}}, &cr); code != 200 || cr.Release != 3 {
		t.Fatalf("retrying a change whose release was lost = %d %+v; want release 3", code, cr)
	}
	var info skiff.AppInfo
	if code, _ := e.do("PUT", "/v1/apps/shop/maintenance", skiff.MaintenanceChange{Enabled: true}, &info); code != 200 || !info.Maintenance {
		t.Fatalf("maintenance on = %d %+v", code, info)
	}
	if a, _, _ := e.st.Apps.Get(context.Background(), "shop"); !a.Maintenance {
		t.Fatal("maintenance not stored")
	}
	// Router settings: checked, stored, shown with their defaults.
	bad, page, on := "../../etc/passwd", "public/503.html", true
	e.expect("PATCH", "/v1/apps/shop/router", skiff.RouterChange{ErrorPage: &bad}, 400, skiff.KindInvalid, "invalid page file")
	var rs skiff.RouterSettings
	if code, _ := e.do("PATCH", "/v1/apps/shop/router", skiff.RouterChange{ErrorPage: &page, Sticky: &on}, &rs); code != 200 ||
		rs.ErrorPage != page || !rs.Sticky || rs.Balance != skiff.BalanceLeastConnections {
		t.Fatalf("router settings = %d %+v", code, rs)
	}
	if a, _, _ := e.st.Apps.Get(context.Background(), "shop"); a.Router.ErrorPage != page || !a.Router.Sticky {
		t.Fatalf("router settings not stored: %+v", a.Router)
	}
	e.expect("POST", "/v1/apps/shop/rollback", skiff.RollbackRequest{Version: 9}, 404, skiff.KindNotFound, "no release v9")
	e.expect("GET", "/v1/apps/shop/releases/x", nil, 400, skiff.KindInvalid, "invalid release")
}

func tarball(t *testing.T, name, link string, typ byte) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: name, Linkname: link, Typeflag: typ, Mode: 0o644})
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func TestDeployRejectsBadUploadsBeforeBuilding(t *testing.T) {
	e := start(t)
	e.do("POST", "/v1/apps", skiff.CreateAppRequest{Name: "shop"}, nil)
	e.expect("POST", "/v1/apps/shop/deploys", tarball(t, "../evil", "", tar.TypeReg), 400, skiff.KindInvalid, "escapes the app's root")
	e.expect("POST", "/v1/apps/shop/deploys", tarball(t, "l", "/etc/passwd", tar.TypeSymlink), 400, skiff.KindInvalid, "points outside the app")
	e.expect("POST", "/v1/apps/shop/deploys", []byte("not gzip"), 400, skiff.KindInvalid, "not a gzipped tar")
	e.expect("POST", "/v1/apps/shop/deploys", bytes.Repeat([]byte("x"), 5000), 413, skiff.KindTooLarge, "larger than the limit")
	e.expect("POST", "/v1/apps/nope/deploys", tarball(t, "a", "", tar.TypeReg), 404, skiff.KindNotFound, "no app named nope")
	// Nothing of the rejected uploads was kept.
	names, _ := e.st.Sources.List(context.Background())
	if len(names) != 0 {
		t.Fatalf("sources store holds %d objects after rejected uploads", len(names))
	}
}

func TestDomains(t *testing.T) {
	e := start(t)
	e.do("POST", "/v1/apps", skiff.CreateAppRequest{Name: "shop"}, nil)
	e.do("POST", "/v1/apps", skiff.CreateAppRequest{Name: "blog"}, nil)
	var d skiff.Domain
	if code, _ := e.do("POST", "/v1/apps/shop/domains", skiff.DomainRequest{Hostname: "WWW.Shop.Example."}, &d); code != 201 || d.Hostname != "www.shop.example" {
		t.Fatalf("add = %d %+v", code, d)
	}
	e.expect("POST", "/v1/apps/shop/domains", skiff.DomainRequest{Hostname: "www.shop.example"}, 409, skiff.KindConflict, "already a domain of shop")
	e.expect("POST", "/v1/apps/blog/domains", skiff.DomainRequest{Hostname: "www.shop.example"}, 409, skiff.KindConflict, "already used by another app")
	e.expect("POST", "/v1/apps/blog/domains", skiff.DomainRequest{Hostname: "x.apps.test"}, 400, skiff.KindInvalid, "under the platform domain")
	e.expect("POST", "/v1/apps/blog/domains", skiff.DomainRequest{Hostname: "http://x.com/"}, 400, skiff.KindInvalid, "invalid hostname")
	e.expect("DELETE", "/v1/apps/blog/domains/www.shop.example", nil, 404, skiff.KindNotFound, "not a domain of blog")
	var list []skiff.Domain
	if code, _ := e.do("GET", "/v1/apps/shop/domains", nil, &list); code != 200 || len(list) != 1 {
		t.Fatalf("list = %d %+v", code, list)
	}
	if code, _ := e.do("DELETE", "/v1/apps/shop/domains/www.shop.example", nil, nil); code != 204 {
		t.Fatalf("remove = %d", code)
	}
}
