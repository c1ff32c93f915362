package admin_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/admin"
	"github.com/skiff-paas/skiff/internal/bus/bustest"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// open starts a bus of its own and opens the state on it with a secret key
// made of b.
func open(t *testing.T, b byte) *store.Store {
	t.Helper()
	box, err := secret.New(bytes.Repeat([]byte{b}, secret.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), bustest.Start(t), box, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

var vars = map[string]string{"GREETING": "hola", "SECRET": "x=y"}

// source is an installation with one app that has served: two releases
// (the second still deploying), config, an image of several chunks, a
// domain with a certificate, a user with a token and an SSH key, the ACME
// client's account, and the transient records a live cluster has.
type source struct {
	st    *store.Store
	image []byte
	obj   string
}

func newSource(t *testing.T) *source {
	t.Helper()
	ctx := context.Background()
	st := open(t, 1)
	img := make([]byte, 3<<20+12345) // several chunks of the object store
	rand.Read(img)
	digest := fmt.Sprintf("sha256:%x", sha256.Sum256(img))
	obj := "shop/" + digest
	must(st.Slugs.Put(ctx, jetstream.ObjectMeta{Name: obj, Description: digest}, bytes.NewReader(img)))

	must(st.Apps.Create(ctx, "shop", skiff.App{Name: "shop", Owner: "ada", UID: 20001, Current: 1,
		Router: skiff.RouterSettings{Sticky: true, Balance: skiff.BalanceRoundRobin}}))
	must(st.UIDs.Create(ctx, "20001", "shop"))
	if _, _, _, err := st.UpdateConfig(ctx, "shop", func(v map[string]string) error { maps.Copy(v, vars); return nil }); err != nil {
		t.Fatal(err)
	}
	sealed := must(st.SealConfig(vars))
	image := skiff.Image{Digest: digest, Size: int64(len(img)), Object: obj}
	must(st.Releases.Create(ctx, skiff.ReleaseKey("shop", 1), skiff.Release{App: "shop", Version: 1, Description: "Deploy",
		Image: image, Processes: map[string]string{"web": "./server"}, ConfigVersion: 1, ConfigSealed: sealed,
		Status: skiff.ReleaseSucceeded, CreatedAt: time.Now().UTC()}))
	must(st.Releases.Create(ctx, skiff.ReleaseKey("shop", 2), skiff.Release{App: "shop", Version: 2, Description: "Set X",
		Image: image, Processes: map[string]string{"web": "./server"}, ConfigVersion: 1, ConfigSealed: sealed,
		Status: skiff.ReleaseDeploying, DeployStarted: time.Now().UTC().Add(-time.Hour), CreatedAt: time.Now().UTC()}))
	must(st.Formations.Create(ctx, "shop", skiff.Formation{App: "shop", Quantity: map[string]int{"web": 2}}))
	must(st.Domains.Create(ctx, "www.shop.example", skiff.Domain{Hostname: "www.shop.example", App: "shop"}))
	must(st.Certs.Create(ctx, "www.shop.example", skiff.Cert{Hostname: "www.shop.example", App: "shop",
		CertPEM: "CERT", KeySealed: must(st.Seal([]byte("PRIVATE KEY"))), Names: []string{"www.shop.example"}}))
	must(st.Tokens.Create(ctx, "ada-token-hash", skiff.Token{User: "ada"}))
	must(st.Tokens.Create(ctx, "source-admin-hash", skiff.Token{User: "admin", Admin: true}))
	must(st.Keys.Create(ctx, skiff.KeyID("SHA256:ada"), skiff.Key{Fingerprint: "SHA256:ada", User: "ada", PublicKey: "ssh-ed25519 AAAA"}))
	must(st.ACME.Put(ctx, "YWNtZV9hY2NvdW50K2tleQ", must(st.Seal([]byte("ACCOUNT KEY")))))

	must(st.Assignments.Create(ctx, "a1", skiff.Assignment{ID: "a1", App: "shop", Node: "old"}))
	must(st.Instances.Create(ctx, "a1", skiff.Instance{ID: "a1", App: "shop"}))
	must(st.Nodes.Create(ctx, "old", skiff.Node{Name: "old"}))
	return &source{st: st, image: img, obj: obj}
}

// target is a fresh installation with another secret key and its own
// admin token, as skiff server makes at its first start.
func newTarget(t *testing.T) *store.Store {
	t.Helper()
	st := open(t, 2)
	must(st.Tokens.Create(context.Background(), "target-admin-hash", skiff.Token{User: "admin", Admin: true}))
	return st
}

func export(t *testing.T, st *store.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := admin.Export(context.Background(), st, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExportImportCarriesTheStateUnderANewKey(t *testing.T) {
	ctx := context.Background()
	src := newSource(t)
	file := export(t, src.st)
	if bytes.Contains(file, []byte(src.image[:64])) == false {
		t.Fatal("the export does not hold the image")
	}
	if !bytes.Contains(file, []byte(`"GREETING":"hola"`)) {
		t.Fatal("the export does not hold the config opened")
	}

	dst := newTarget(t)
	rep, err := admin.Import(ctx, dst, bytes.NewReader(file), admin.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"apps": 1, "releases": 2, "config": 1, "formation": 1, "domains": 1, "certs": 1,
		"tokens": 2, "keys": 1, "uids": 1, "acme": 1}
	if !maps.Equal(rep.Records, want) || rep.Objects["slugs"] != 1 || rep.Bytes != int64(len(src.image)) ||
		len(rep.Apps) != 1 || rep.Apps[0] != "shop" {
		t.Fatalf("report = %+v; want records %v, one image of %d bytes, app shop", rep, want, len(src.image))
	}
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "v2 of shop was still deploying") {
		t.Fatalf("warnings = %q; want one about v2 rolled out again", rep.Warnings)
	}

	// Config, opened with the target's key.
	got, version, err := dst.Config(ctx, "shop")
	if err != nil || !maps.Equal(got, vars) || version != 1 {
		t.Fatalf("config on the target = %v v%d, %v; want %v v1", got, version, err, vars)
	}
	rel, _, err := dst.Release(ctx, "shop", 1)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := dst.OpenConfig(rel.ConfigSealed); err != nil || !maps.Equal(cfg, vars) {
		t.Fatalf("release v1's config on the target = %v, %v", cfg, err)
	}
	if _, err := src.st.OpenConfig(rel.ConfigSealed); err == nil {
		t.Fatal("the target's release config opens with the source's key: it was not sealed again")
	}
	srcRel, _, _ := src.st.Release(ctx, "shop", 1)
	rel.ConfigSealed, srcRel.ConfigSealed = nil, nil
	if fmt.Sprint(rel) != fmt.Sprint(srcRel) {
		t.Fatalf("release v1 = %+v\nwant %+v", rel, srcRel)
	}
	if rel2, _, _ := dst.Release(ctx, "shop", 2); rel2.Status != skiff.ReleasePending || !rel2.DeployStarted.IsZero() {
		t.Fatalf("release v2 = %s since %v; want pending again", rel2.Status, rel2.DeployStarted)
	}

	// The app as it was, uid and router settings included.
	a, _, err := dst.Apps.Get(ctx, "shop")
	srcApp, _, _ := src.st.Apps.Get(ctx, "shop")
	if err != nil || fmt.Sprint(a) != fmt.Sprint(srcApp) {
		t.Fatalf("app = %+v, %v; want %+v", a, err, srcApp)
	}
	if uid, _, err := dst.UIDs.Get(ctx, "20001"); err != nil || uid != "shop" {
		t.Fatalf("uid 20001 = %q, %v", uid, err)
	}
	if f, _, err := dst.Formations.Get(ctx, "shop"); err != nil || f.Quantity["web"] != 2 {
		t.Fatalf("formation = %+v, %v", f, err)
	}
	if d, _, err := dst.Domains.Get(ctx, "www.shop.example"); err != nil || d.App != "shop" {
		t.Fatalf("domain = %+v, %v", d, err)
	}
	c, _, err := dst.Certs.Get(ctx, "www.shop.example")
	if err != nil || c.CertPEM != "CERT" || string(must(dst.Unseal(c.KeySealed))) != "PRIVATE KEY" {
		t.Fatalf("cert = %+v, %v", c, err)
	}
	if sealed, _, err := dst.ACME.Get(ctx, "YWNtZV9hY2NvdW50K2tleQ"); err != nil || string(must(dst.Unseal(sealed))) != "ACCOUNT KEY" {
		t.Fatalf("acme account = %v", err)
	}
	if k, _, err := dst.Keys.Get(ctx, skiff.KeyID("SHA256:ada")); err != nil || k.User != "ada" {
		t.Fatalf("key = %+v, %v", k, err)
	}
	// The target's own admin token stays; the source's tokens come.
	for _, h := range []string{"target-admin-hash", "source-admin-hash", "ada-token-hash"} {
		if _, _, err := dst.Tokens.Get(ctx, h); err != nil {
			t.Fatalf("token %s: %v", h, err)
		}
	}
	// What the live cluster rebuilds stays behind.
	for _, b := range []interface {
		Name() string
	}{dst.Assignments, dst.Instances, dst.Nodes} {
		if n := len(must(listAll(ctx, dst, b.Name()))); n != 0 {
			t.Errorf("bucket %s has %d records after import; want none", b.Name(), n)
		}
	}

	// The image, byte for byte, with its metadata.
	obj, err := dst.Slugs.Get(ctx, src.obj)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(obj)
	info, _ := obj.Info()
	if err != nil || !bytes.Equal(data, src.image) || info.Description != "sha256:"+fmt.Sprintf("%x", sha256.Sum256(src.image)) {
		t.Fatalf("image on the target: %d bytes (want %d), description %q, %v", len(data), len(src.image), info.Description, err)
	}

	// A second import would mix two states: refused, nothing changed.
	_, err = admin.Import(ctx, dst, bytes.NewReader(file), admin.ImportOptions{})
	if skiff.KindOf(err) != skiff.KindConflict || !strings.Contains(err.Error(), "already has app shop") {
		t.Fatalf("second import: %v; want a conflict naming app shop", err)
	}
	if n := len(must(dst.ListReleases(ctx, "shop"))); n != 2 {
		t.Fatalf("after the refused import the target has %d releases", n)
	}
}

func listAll(ctx context.Context, st *store.Store, bucket string) ([]string, error) {
	kv, err := st.JS.KeyValue(ctx, bucket)
	if err != nil {
		return nil, err
	}
	l, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	return keys, nil
}

// untouched fails the test unless dst is as newTarget made it: its one
// token, no other record and no image.
func untouched(t *testing.T, dst *store.Store) {
	t.Helper()
	ctx := context.Background()
	for _, b := range []string{"apps", "releases", "config", "formation", "domains", "certs", "uids", "keys", "acme", "tokens"} {
		keys := must(listAll(ctx, dst, b))
		if b == "tokens" && len(keys) == 1 && keys[0] == "target-admin-hash" {
			continue
		}
		if len(keys) != 0 {
			t.Errorf("bucket %s holds %v after a refused import", b, keys)
		}
	}
	if objs, err := dst.Slugs.List(ctx); !errors.Is(err, jetstream.ErrNoObjectsFound) {
		t.Errorf("slugs hold %d objects after a refused import (%v)", len(objs), err)
	}
}

func TestDamagedExportsAreRefusedWithNothingWritten(t *testing.T) {
	src := newSource(t)
	// An image before the large one, stored by the import before the
	// large one fails, and deleted again.
	must(src.st.Slugs.PutBytes(context.Background(), "shop/aaa", []byte("a small image")))
	file := export(t, src.st)
	flip := func(at int) []byte {
		b := bytes.Clone(file)
		b[at] ^= 0x40
		return b
	}
	record := bytes.Index(file, []byte(`"GREETING":"hola"`))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(file[:len(file)/2])
	zw.Close()
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "not a Skiff export"},
		{"not a tar", []byte("hello, this is not an export at all\n"), "not a Skiff export"},
		{"cut in the manifest", file[:700], "cut short"},
		{"cut after the records", file[:bytes.Index(file, []byte("objects/slugs/"))-1], "damaged"},
		{"cut in the image", file[:len(file)-1<<20], "cut short"},
		{"record changed", flip(record + 12), "does not match its checksum"},
		{"image changed at its end", flip(len(file) - 1024 - 600), "does not match its checksum"},
		{"gzipped and cut", gz.Bytes(), "damaged"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dst := newTarget(t)
			_, err := admin.Import(context.Background(), dst, bytes.NewReader(c.file), admin.ImportOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) || skiff.KindOf(err) != skiff.KindInvalid {
				t.Fatalf("import: %v; want an invalid-kind error saying %q", err, c.want)
			}
			untouched(t, dst)
		})
	}
}

func TestGzippedExportAndDryRun(t *testing.T) {
	ctx := context.Background()
	src := newSource(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := admin.Export(ctx, src.st, zw); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	dst := newTarget(t)
	rep, err := admin.Import(ctx, dst, bytes.NewReader(gz.Bytes()), admin.ImportOptions{DryRun: true})
	if err != nil || !rep.DryRun || rep.Records["apps"] != 1 || rep.Objects["slugs"] != 1 {
		t.Fatalf("dry run: %+v, %v", rep, err)
	}
	untouched(t, dst)
	if _, err := admin.Import(ctx, dst, bytes.NewReader(gz.Bytes()), admin.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dst.Apps.Get(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
}

func TestImportRefusesATargetWithState(t *testing.T) {
	ctx := context.Background()
	file := export(t, newSource(t).st)

	dst := newTarget(t)
	must(dst.Apps.Create(ctx, "other", skiff.App{Name: "other"}))
	_, err := admin.Import(ctx, dst, bytes.NewReader(file), admin.ImportOptions{})
	if skiff.KindOf(err) != skiff.KindConflict || !strings.Contains(err.Error(), "already has app other") {
		t.Fatalf("import into a target with an app: %v", err)
	}
	if err := admin.CheckTarget(ctx, dst); skiff.KindOf(err) != skiff.KindConflict {
		t.Fatalf("CheckTarget: %v", err)
	}
	if n := len(must(listAll(ctx, dst, "releases"))); n != 0 {
		t.Fatalf("the refused import wrote %d releases", n)
	}

	// An SSH key the target gives to another user is a conflict too,
	// found before anything is written.
	dst = newTarget(t)
	must(dst.Keys.Create(ctx, skiff.KeyID("SHA256:ada"), skiff.Key{Fingerprint: "SHA256:ada", User: "bob"}))
	_, err = admin.Import(ctx, dst, bytes.NewReader(file), admin.ImportOptions{})
	if skiff.KindOf(err) != skiff.KindConflict || !strings.Contains(err.Error(), "SHA256:ada") {
		t.Fatalf("import with a conflicting key: %v", err)
	}
	if n := len(must(listAll(ctx, dst, "apps"))); n != 0 {
		t.Fatal("the refused import wrote apps")
	}
	if objs, err := dst.Slugs.List(ctx); !errors.Is(err, jetstream.ErrNoObjectsFound) {
		t.Fatalf("the refused import left %d images", len(objs))
	}
}

// TestEveryBucketIsExportedOrLeftOnPurpose keeps the export in step with
// the state's layout: a bucket or object store added to store.Open must be
// exported, or left behind with a reason, here.
func TestEveryBucketIsExportedOrLeftOnPurpose(t *testing.T) {
	m, err := admin.Take(context.Background(), open(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	if w := m.Manifest().Warnings; len(w) != 0 {
		t.Fatalf("the export of a fresh installation warns: %q", w)
	}
	if left := strings.Join(m.Manifest().Left, "\n"); !strings.Contains(left, "bucket instances") || !strings.Contains(left, "object store sources") {
		t.Fatalf("left behind:\n%s", left)
	}
}

// TestTheFileIsATarWithTheManifestFirst pins the layout other tools may
// rely on.
func TestTheFileIsATarWithTheManifestFirst(t *testing.T) {
	file := export(t, newSource(t).st)
	tr := tar.NewReader(bytes.NewReader(file))
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Mode != 0o600 {
			t.Errorf("%s has mode %o", hdr.Name, hdr.Mode)
		}
		names = append(names, hdr.Name)
	}
	if names[0] != "manifest.json" || !strings.HasPrefix(names[len(names)-1], "objects/slugs/shop/sha256:") {
		t.Fatalf("entries: %q", names)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "kv/instances/") || strings.HasPrefix(n, "kv/assignments/") || strings.HasPrefix(n, "kv/nodes/") {
			t.Fatalf("transient record %s exported", n)
		}
	}
}

// An app pinned to labelled nodes comes with its placement, and the import
// says the target's nodes need the labels.
func TestImportWarnsOfPlacement(t *testing.T) {
	ctx := context.Background()
	src := open(t, 1)
	kv, err := src.JS.KeyValue(ctx, skiff.BucketApps)
	if err != nil {
		t.Fatal(err)
	}
	must(kv.Put(ctx, "shop", []byte(`{"name":"shop","placement":{"region":"eu"}}`)))
	rep, err := admin.Import(ctx, newTarget(t), bytes.NewReader(export(t, src)), admin.ImportOptions{})
	if err != nil || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "app shop runs only on nodes labelled region=eu") {
		t.Fatalf("import: %v, warnings %q", err, rep.Warnings)
	}
}
