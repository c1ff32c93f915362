package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/skiff-paas/skiff/internal/client"
	"github.com/skiff-paas/skiff/internal/skiff"
)

func TestAdminExportImport(t *testing.T) {
	ctx := context.Background()
	src := start(t)
	src.do("POST", "/v1/apps", skiff.CreateAppRequest{Name: "shop"}, nil)
	if code, _ := src.do("PATCH", "/v1/apps/shop/config", skiff.ConfigChange{Set: map[string]string{"GREETING": "hola"}}, nil); code != 200 {
		t.Fatalf("config set = %d", code)
	}
	srcToken := src.token
	var ada skiff.UserToken
	src.do("POST", "/v1/users", skiff.UserRequest{Name: "ada"}, &ada)

	// Admins only.
	src.token = ada.Token
	src.expect("GET", "/v1/admin/export", nil, 403, skiff.KindForbidden, "only admins")
	src.expect("POST", "/v1/admin/import", nil, 403, skiff.KindForbidden, "only admins")
	src.expect("GET", "/v1/admin/import", nil, 403, skiff.KindForbidden, "only admins")
	adminToken := start(t).token // any admin token of another installation is unknown here
	src.token = adminToken
	src.expect("GET", "/v1/admin/export", nil, 401, skiff.KindUnauthorized, "unknown API token")

	// Export: the summary before the file, the file complete.
	src.token = srcToken
	x, err := client.New(src.url, src.token).Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	file, err := io.ReadAll(x)
	x.Close()
	if err != nil || x.Summary.Records["apps"] != 1 || x.Summary.Records["config"] != 1 || x.Summary.Records["tokens"] != 2 {
		t.Fatalf("export: %d bytes, summary %+v, %v", len(file), x.Summary, err)
	}

	// Import into a fresh installation: a dry run writes nothing; the
	// import brings the app, its config and the tokens, and the target's
	// own admin token keeps working.
	dst := start(t)
	c := client.New(dst.url, dst.token)
	if err := c.CheckImport(ctx); err != nil {
		t.Fatalf("check a fresh target: %v", err)
	}
	rep, err := c.Import(ctx, bytes.NewReader(file), true)
	if err != nil || !rep.DryRun || len(rep.Apps) != 1 {
		t.Fatalf("dry run: %+v, %v", rep, err)
	}
	if apps, _ := c.Apps(ctx); len(apps) != 0 {
		t.Fatalf("the dry run imported %v", apps)
	}
	rep, err = c.Import(ctx, bytes.NewReader(file), false)
	if err != nil || rep.DryRun || len(rep.Apps) != 1 || rep.Apps[0] != "shop" || rep.Records["config"] != 1 {
		t.Fatalf("import: %+v, %v", rep, err)
	}
	if cfg, err := c.Config(ctx, "shop"); err != nil || cfg.Config["GREETING"] != "hola" {
		t.Fatalf("config after import = %+v, %v", cfg, err)
	}
	for _, tok := range []string{dst.token, src.token, ada.Token} {
		if _, err := client.New(dst.url, tok).WhoAmI(ctx); err != nil {
			t.Fatalf("token after import: %v", err)
		}
	}
	if err := c.CheckImport(ctx); skiff.KindOf(err) != skiff.KindConflict || !strings.Contains(err.Error(), "app shop") {
		t.Fatalf("check a target with apps: %v", err)
	}
	if _, err := c.Import(ctx, bytes.NewReader(file), false); skiff.KindOf(err) != skiff.KindConflict {
		t.Fatalf("second import: %v", err)
	}

	// A file that is no export, large enough that the server answers
	// before it has read it: the client gets the answer.
	junk := make([]byte, 16<<20)
	rand.Read(junk)
	fresh := start(t)
	_, err = client.New(fresh.url, fresh.token).Import(ctx, bytes.NewReader(junk), false)
	if skiff.KindOf(err) != skiff.KindInvalid || !strings.Contains(err.Error(), "not a Skiff export") {
		t.Fatalf("import of junk: %v", err)
	}
}

// An export that fails half-way is an error at the end of the file, not
// a short file taken for whole.
func TestClientExportSeesAFailedTrailer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Skiff-Export-Summary", `{"format":1}`)
		w.Header().Set("Trailer", "Skiff-Export-Status")
		w.Write([]byte("part of a file"))
		w.Header().Set("Skiff-Export-Status", "failed: image shop/x was deleted")
	}))
	defer srv.Close()
	x, err := client.New(srv.URL, "t").Export(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	data, err := io.ReadAll(x)
	if string(data) != "part of a file" || skiff.KindOf(err) != skiff.KindFailed || !strings.Contains(err.Error(), "image shop/x was deleted") {
		t.Fatalf("read %q, %v", data, err)
	}
}
